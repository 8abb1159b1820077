// File: faultline/core/buggify.h
//
// BUGGIFY points and coverage probes: hooks that only the simulator turns on.
//
//   if (FL_BUGGIFY("disk.short_write")) { ...take the rare path... }
//   FL_PROBE("lease.expired_early");   // counts that a rare branch ran
//
// FL_BUGGIFY(name) is false unless the calling thread is running an event of a simulated World
// that enabled buggify for its run (sim::World::EnableBuggify). Under such a World, each point is
// activated or not once per run (25%, drawn when the point is first reached, from the world's
// buggify stream), and an active point fires on 25% of its evaluations (FL_BUGGIFY_WITH_PERCENT
// sets another rate). This is FoundationDB's BUGGIFY: a point that fires in one run is silent in
// most others, so rare paths are reached without every run drowning in them. Same seed, same
// activations, same firings: the draws come from the seed like every other choice of the run.
//
// FL_PROBE(name) adds one to the probe's count in the running World (nothing outside one). Probes
// mark rare branches; the lab reports, per scenario, which probes the seeds never reached.
//
// Points and probes register themselves at program start (one static per name), so the lab can
// list probes that were never hit. Names are string literals, "module.what".
//
// What the timing points void. timer.delay_spike (a node timer up to 1 s late) and
// net.delivery_stall (a delivery up to 200 ms late; on a FIFO link everything behind it waits) keep
// every safety contract of the seams -- nothing fires early, nothing is lost or corrupted -- but
// they change the timing that liveness and performance bounds were derived for:
//   - distributed-txn/hardened (seeds 37, 125 of 1..200): the saga pipeline (outbox, relay,
//     broker, inbox) runs slower, a transfer's compensation is still in flight at 14 s and the
//     run reports it stuck, and the final balances, read with its debit applied, short by its
//     amount. With the run extended to 20 s every seed of 1..200 completes and conserves money.
//   - retry-amplification and backpressure: their goodput and recovery bounds assume millisecond
//     service and link times against a 1 s deadline. A 2% stall rate on a link carrying 500
//     messages/s stalls it ~10 times a second, so with stalls the link is delayed most of the
//     time, not rarely; a late service timer holds a worker slot for up to 1 s. These bounds are
//     void under the two points; they are not re-derived here.
// Safety checks stay valid under every point.
//
// Cost outside the simulator: one load of a thread-local pointer and a predicted branch per
// point; nothing is allocated or drawn. Building with -DFAULTLINE_NO_SIM_HOOKS compiles every
// FL_BUGGIFY to `false` and every FL_PROBE to nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "faultline/core/random.h"

namespace faultline {

// What a running World lends to the code of its events (see sim::World). Not thread-safe: a
// World runs on one thread, and the context is installed only on that thread.
struct SimHooks {
  // Null: buggify is off for this run.
  Rng* buggify_rng = nullptr;
  // Per buggify point: 0 not yet reached, 1 active, 2 inactive.
  std::vector<uint8_t> buggify_state;
  std::vector<int64_t> buggify_fired;  // firings per point
  std::vector<int64_t> probe_hits;     // hits per probe
};

// The running World's buggify stream, for the size of what a point that fired does (how long a
// stall, how short a write). Only after FL_BUGGIFY returned true.
Rng& BuggifyRandom();

// Every registered buggify point and probe, by index.
std::vector<std::string> BuggifyPointNames();
std::vector<std::string> ProbeNames();

// Installs `hooks` on this thread until destroyed; restores the previous context.
class ScopedSimHooks {
 public:
  explicit ScopedSimHooks(SimHooks* hooks);
  ~ScopedSimHooks();
  ScopedSimHooks(const ScopedSimHooks&) = delete;
  ScopedSimHooks& operator=(const ScopedSimHooks&) = delete;

 private:
  SimHooks* previous_;
};

namespace internal {

extern constinit thread_local SimHooks* tls_sim_hooks;

uint32_t RegisterBuggifyPoint(const char* name);
uint32_t RegisterProbe(const char* name);
// Slow paths, called only with a context installed.
bool BuggifyFires(uint32_t point, uint32_t percent);
void ProbeHit(uint32_t probe);

// A string literal as a template argument: one static registration per name.
template <size_t N>
struct PointName {
  constexpr PointName(const char (&s)[N]) {  // NOLINT: implicit by design
    for (size_t i = 0; i < N; ++i) text[i] = s[i];
  }
  char text[N];
};

template <PointName kName>
struct BuggifyPoint {
  static inline const uint32_t index = RegisterBuggifyPoint(kName.text);
};

template <PointName kName>
struct ProbePoint {
  static inline const uint32_t index = RegisterProbe(kName.text);
};

}  // namespace internal
}  // namespace faultline

#ifdef FAULTLINE_NO_SIM_HOOKS
#define FL_BUGGIFY_WITH_PERCENT(name, percent) false
#define FL_PROBE(name) \
  do {                 \
  } while (false)
#else
#define FL_BUGGIFY_WITH_PERCENT(name, percent)                         \
  (::faultline::internal::tls_sim_hooks != nullptr &&                  \
   ::faultline::internal::tls_sim_hooks->buggify_rng != nullptr &&     \
   ::faultline::internal::BuggifyFires(                                \
       ::faultline::internal::BuggifyPoint<name>::index, (percent)))
#define FL_PROBE(name)                                                                        \
  do {                                                                                        \
    if (::faultline::internal::tls_sim_hooks != nullptr) {                                    \
      ::faultline::internal::ProbeHit(::faultline::internal::ProbePoint<name>::index);        \
    }                                                                                         \
  } while (false)
#endif
#define FL_BUGGIFY(name) FL_BUGGIFY_WITH_PERCENT(name, 25)
