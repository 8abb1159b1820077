#include "faultline/lab/scenario.h"

#include "src/lab/scenarios.h"

namespace faultline::lab {

int64_t RunResult::violation_count() const {
  int64_t n = 0;
  for (const auto& [name, count] : violations) n += count;
  return n;
}

void RunResult::Violate(const std::string& name, int64_t count, std::string_view detail) {
  FL_ASSERT(count >= 0);
  if (count == 0) return;
  violations[name] += count;
  if (!detail.empty()) violation_details.try_emplace(name, detail);
}

void ObserveRun(sim::World& world, const RunContext& context) {
  if (context.trace) world.set_trace(context.trace);
  world.set_event_hashes(context.event_hashes);
}

void FinishRun(const sim::World& world, const RunContext& context, RunResult* result) {
  result->hash = world.hash();
  result->events = world.events_executed();
  result->simulated = world.elapsed();
  if (context.history_out != nullptr) *context.history_out = world.history();
}

void RecordOp(sim::World& world, int64_t process, check::OpType type, std::string_view f,
              std::string_view value_json) {
  world.history().Add(process, type, f, value_json, world.now().nanos());
}

Result<RunResult> RunOne(std::string_view scenario, std::string_view variant, uint64_t seed) {
  const Scenario* s = FindScenario(scenario);
  if (s == nullptr) return NotFoundError("unknown scenario");
  const std::vector<VariantSpec> variants = s->variants();
  const VariantSpec* v = FindVariant(variants, variant);
  if (v == nullptr) return NotFoundError("unknown variant");
  RunContext context;
  context.seed = seed;
  context.variant = v;
  return s->Run(context);
}

const std::vector<const Scenario*>& AllScenarios() {
  static const std::vector<const Scenario*> all = {SelftestScenario(), SplitBrainScenario(),
                                                     ClockOrderingScenario(),
                                                     RetryAmplificationScenario(),
                                                     BackpressureScenario(),
                                                     IdempotencyScenario(),
                                                     DistributedTxnScenario(),
                                                     ShardingScenario()};
  return all;
}

const Scenario* FindScenario(std::string_view id) {
  for (const Scenario* s : AllScenarios()) {
    if (s->id() == id) return s;
  }
  return nullptr;
}

const VariantSpec* FindVariant(const std::vector<VariantSpec>& variants, std::string_view name) {
  for (const VariantSpec& v : variants) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

}  // namespace faultline::lab
