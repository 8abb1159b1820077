#include "faultline/core/buggify.h"

#include <mutex>

#include "faultline/core/assert.h"

namespace faultline {
namespace {

constexpr uint32_t kActivatePercent = 25;

// Names by index. Registration runs during static initialisation (one thread), but a guard keeps
// a late registration from a dynamically loaded library safe too.
struct Registry {
  std::mutex mu;
  std::vector<std::string> points;
  std::vector<std::string> probes;
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: statics may register during exit
  return *r;
}

uint32_t Register(std::vector<std::string>& names, const char* name) {
  for (uint32_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return i;  // the same name used at two sites is one point
  }
  names.emplace_back(name);
  return static_cast<uint32_t>(names.size() - 1);
}

}  // namespace

namespace internal {

constinit thread_local SimHooks* tls_sim_hooks = nullptr;

uint32_t RegisterBuggifyPoint(const char* name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return Register(r.points, name);
}

uint32_t RegisterProbe(const char* name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return Register(r.probes, name);
}

bool BuggifyFires(uint32_t point, uint32_t percent) {
  SimHooks& h = *tls_sim_hooks;
  if (h.buggify_state.size() <= point) {
    h.buggify_state.resize(point + 1, 0);
    h.buggify_fired.resize(point + 1, 0);
  }
  uint8_t& state = h.buggify_state[point];
  if (state == 0) state = h.buggify_rng->Chance(Ratio::Percent(kActivatePercent)) ? 1 : 2;
  if (state != 1 || !h.buggify_rng->Chance(Ratio::Percent(percent))) return false;
  ++h.buggify_fired[point];
  return true;
}

void ProbeHit(uint32_t probe) {
  SimHooks& h = *tls_sim_hooks;
  if (h.probe_hits.size() <= probe) h.probe_hits.resize(probe + 1, 0);
  ++h.probe_hits[probe];
}

}  // namespace internal

Rng& BuggifyRandom() {
  FL_ASSERT_MSG(internal::tls_sim_hooks != nullptr && internal::tls_sim_hooks->buggify_rng,
                "BuggifyRandom outside a buggified run");
  return *internal::tls_sim_hooks->buggify_rng;
}

std::vector<std::string> BuggifyPointNames() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.points;
}

std::vector<std::string> ProbeNames() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.probes;
}

ScopedSimHooks::ScopedSimHooks(SimHooks* hooks) : previous_(internal::tls_sim_hooks) {
  internal::tls_sim_hooks = hooks;
}

ScopedSimHooks::~ScopedSimHooks() { internal::tls_sim_hooks = previous_; }

}  // namespace faultline
