#include "faultline/lab/scenario.h"

#include "src/lab/scenarios.h"

namespace faultline::lab {

int64_t RunResult::violation_count() const {
  int64_t n = 0;
  for (const auto& [name, count] : violations) n += count;
  return n;
}

void RunResult::Violate(const std::string& name, int64_t count) {
  FL_ASSERT(count >= 0);
  if (count > 0) violations[name] += count;
}

const std::vector<const Scenario*>& AllScenarios() {
  static const std::vector<const Scenario*> all = {SelftestScenario(), ClockOrderingScenario()};
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
