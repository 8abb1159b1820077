// Tests for faultline/lease/phi_accrual.h on explicit MonoTimes: phi against Akka's formula, the
// computed threshold-crossing time for regular 1 s heartbeats, robustness to jitter, the min_std
// floor and acceptable_pause, window eviction, intervals that end a suspicion not being learned,
// exact integer statistics after 10^6 heartbeats, and the local-pause guard (a node whose own loop
// stalled convicts nobody until it has run quietly again: Cassandra's rule).
#include "faultline/lease/phi_accrual.h"

#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/random.h"

namespace faultline::lease {
namespace {

MonoTime AtMs(int64_t ms) { return MonoTime::FromNanos(0) + Duration::Millis(ms); }
Duration Ms(int64_t ms) { return Duration::Millis(ms); }

std::unique_ptr<PhiAccrualDetector> Make(const PhiAccrualOptions& o = {}) {
  auto r = PhiAccrualDetector::Create(o);
  FL_ASSERT_MSG(r.ok(), r.status().ToString().c_str());
  return std::move(r).value();
}

std::unique_ptr<FailureDetector> MakeFd(const FailureDetectorOptions& o = {}) {
  auto r = FailureDetector::Create(o);
  FL_ASSERT_MSG(r.ok(), r.status().ToString().c_str());
  return std::move(r).value();
}

// Akka's PhiAccrualFailureDetector.phi, verbatim (overflows to inf for large y).
double AkkaPhi(double dt, double mean, double std) {
  const double y = (dt - mean) / std;
  const double e = std::exp(-y * (1.5976 + 0.070566 * y * y));
  return dt > mean ? -std::log10(e / (1.0 + e)) : -std::log10(1.0 - 1.0 / (1.0 + e));
}

// `n` heartbeats `interval` apart, the first at `start`; returns the time of the last.
MonoTime Regular(PhiAccrualDetector& d, MonoTime start, Duration interval, int n) {
  MonoTime t = start;
  for (int i = 0; i < n; ++i) {
    if (i > 0) t += interval;
    d.Heartbeat(t);
  }
  return t;
}

void ExpectInvalid(const Status& s, const char* field) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
  EXPECT_NE(std::string(s.message()).find(field), std::string::npos) << s.ToString();
}

// --- Options -------------------------------------------------------------------------------------

TEST(PhiAccrualOptionsTest, InvalidOptionsAreRejectedNamingTheField) {
  EXPECT_TRUE(PhiAccrualOptions().Validate().ok());
  EXPECT_TRUE(FailureDetectorOptions().Validate().ok());
  auto phi = [](auto mutate) {
    PhiAccrualOptions o;
    mutate(o);
    EXPECT_FALSE(PhiAccrualDetector::Create(o).ok());
    return o.Validate();
  };
  for (const double t : {0.0, 0.5, 100.5, -8.0, std::numeric_limits<double>::quiet_NaN(),
                         std::numeric_limits<double>::infinity()}) {
    ExpectInvalid(phi([t](PhiAccrualOptions& o) { o.threshold = t; }), "threshold");
  }
  ExpectInvalid(phi([](PhiAccrualOptions& o) { o.window_max = 1; }), "window_max");
  ExpectInvalid(phi([](PhiAccrualOptions& o) { o.window_max = kPhiWindowMax + 1; }), "window_max");
  ExpectInvalid(phi([](PhiAccrualOptions& o) { o.min_std = Duration::Zero(); }), "min_std");
  ExpectInvalid(phi([](PhiAccrualOptions& o) { o.min_std = Ms(-1); }), "min_std");
  ExpectInvalid(phi([](PhiAccrualOptions& o) { o.min_std = kPhiIntervalMax + Ms(1); }), "min_std");
  ExpectInvalid(phi([](PhiAccrualOptions& o) { o.acceptable_pause = Ms(-1); }), "acceptable_pause");
  ExpectInvalid(phi([](PhiAccrualOptions& o) { o.acceptable_pause = Duration::Infinite(); }),
                "acceptable_pause");
  ExpectInvalid(phi([](PhiAccrualOptions& o) { o.first_heartbeat_estimate = Duration::Zero(); }),
                "first_heartbeat_estimate");
  ExpectInvalid(phi([](PhiAccrualOptions& o) {
                  o.first_heartbeat_estimate = kPhiIntervalMax / 2 + Duration::Nanos(1);
                }),
                "first_heartbeat_estimate");
  // The limits themselves are valid.
  PhiAccrualOptions edge;
  edge.threshold = kPhiThresholdMax;
  edge.window_max = kPhiWindowMax;
  edge.min_std = Duration::Nanos(1);
  edge.acceptable_pause = kPhiIntervalMax;
  edge.first_heartbeat_estimate = kPhiIntervalMax / 2;
  EXPECT_TRUE(PhiAccrualDetector::Create(edge).ok());
  edge.threshold = kPhiThresholdMin;
  EXPECT_TRUE(PhiAccrualDetector::Create(edge).ok());

  auto fd = [](auto mutate) {
    FailureDetectorOptions o;
    mutate(o);
    EXPECT_FALSE(FailureDetector::Create(o).ok());
    return o.Validate();
  };
  ExpectInvalid(fd([](FailureDetectorOptions& o) { o.phi.threshold = 0; }), "phi.threshold");
  ExpectInvalid(fd([](FailureDetectorOptions& o) { o.phi.window_max = 0; }), "phi.window_max");
  ExpectInvalid(fd([](FailureDetectorOptions& o) { o.pause_threshold = Duration::Zero(); }),
                "pause_threshold");
  ExpectInvalid(fd([](FailureDetectorOptions& o) { o.quiet = Ms(-1); }), "quiet");
  ExpectInvalid(fd([](FailureDetectorOptions& o) { o.peers_max = 0; }), "peers_max");
}

// --- PhiAccrualDetector --------------------------------------------------------------------------

TEST(PhiAccrualDetectorTest, NothingIsSuspectedBeforeTheFirstHeartbeat) {
  // No evidence, no suspicion: a peer never heard from is not "failed" (callers track joining).
  auto d = Make();
  EXPECT_EQ(d->Phi(AtMs(1'000'000)), 0.0);
  EXPECT_FALSE(d->Suspect(AtMs(1'000'000)));
  EXPECT_EQ(d->SuspectAfter(), MonoTime::Max());
  EXPECT_FALSE(d->has_heartbeat());
}

TEST(PhiAccrualDetectorTest, BootstrapMatchesAkkaAndPhiMatchesAkkasFormula) {
  // After one heartbeat the history is Akka's bootstrap (mean = estimate, std = estimate / 4), and
  // Phi is Akka's phi wherever Akka's own evaluation is finite.
  auto d = Make();
  d->Heartbeat(AtMs(10'000));
  EXPECT_EQ(d->samples(), 2u);
  EXPECT_EQ(d->interval_mean_ns(), 1e9);
  EXPECT_EQ(d->interval_std_ns(), 2.5e8);
  for (int64_t dt_ms = 0; dt_ms <= 8000; dt_ms += 7) {
    const double expected = AkkaPhi(dt_ms * 1e6, 4e9, 2.5e8);
    const double phi = d->Phi(AtMs(10'000 + dt_ms));
    if (!std::isfinite(expected) || expected < 1e-10) continue;
    EXPECT_NEAR(phi, expected, 1e-9 * expected + 1e-12) << dt_ms;
  }
}

TEST(PhiAccrualDetectorTest, PhiGrowsWithSilenceStaysFiniteAndNeverDecreases) {
  // Phi must be usable as a level: monotone in the silence, and finite even for silences where
  // Akka's direct formula overflows to infinity (e^-y·(...) underflows to 0).
  auto d = Make();
  const MonoTime last = Regular(*d, AtMs(0), Ms(1000), 50);
  double previous = -1;
  for (int64_t dt_ns = 0; dt_ns <= 60'000'000'000; dt_ns += 1'000'003) {
    const double phi = d->Phi(last + Duration::Nanos(dt_ns));
    ASSERT_TRUE(std::isfinite(phi)) << dt_ns;
    ASSERT_GE(phi, previous) << dt_ns;
    previous = phi;
  }
  EXPECT_GT(previous, 1e4);
  // Nanosecond steps right around the threshold and around the mean.
  for (const MonoTime center : {d->SuspectAfter(), last + Ms(4000)}) {
    double prev = -1;
    for (int64_t ns = -5000; ns <= 5000; ++ns) {
      const double phi = d->Phi(center + Duration::Nanos(ns));
      ASSERT_GE(phi, prev) << ns;
      prev = phi;
    }
  }
  const double far = d->Phi(MonoTime::Max());
  EXPECT_TRUE(std::isfinite(far));
  EXPECT_GE(far, previous);
  EXPECT_TRUE(std::isinf(AkkaPhi(600e9, 4e9, 1e8)));  // what the direct formula would return
}

TEST(PhiAccrualDetectorTest, RegularOneSecondHeartbeatsCrossThresholdAtTheComputedTime) {
  // With 1000+ perfectly regular 1 s heartbeats the window holds only 1 s intervals (the bootstrap
  // aged out): std = 0, floored to min_std = 100 ms, and mean = 1 s + 3 s acceptable pause. Phi
  // reaches 8 where y (1.5976 + 0.070566 y²) = ln(10^8 - 1), y* ≈ 5.2262, i.e. after
  // 4 s + 5.2262 · 100 ms ≈ 4.5226 s of silence. The crossing is found here independently, by
  // bisection on Akka's own formula.
  auto d = Make();
  const MonoTime last = Regular(*d, AtMs(0), Ms(1000), 1100);
  ASSERT_EQ(d->samples(), 1000u);
  ASSERT_EQ(d->interval_mean_ns(), 1e9);
  ASSERT_EQ(d->interval_std_ns(), 0.0);

  double lo = 4e9;
  double hi = 6e9;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    (AkkaPhi(mid, 4e9, 1e8) > 8.0 ? hi : lo) = mid;
  }
  EXPECT_GT(hi, 4.522e9);
  EXPECT_LT(hi, 4.523e9);
  const int64_t crossing_ns = (d->SuspectAfter() - last).nanos();
  EXPECT_NEAR(static_cast<double>(crossing_ns), hi, 1000.0);  // within 1 µs

  EXPECT_LT(d->Phi(last + Duration::Nanos(crossing_ns - 1'000'000)), 8.0);
  EXPECT_GT(d->Phi(last + Duration::Nanos(crossing_ns + 1'000'000)), 8.0);
  EXPECT_FALSE(d->Suspect(d->SuspectAfter()));
  EXPECT_TRUE(d->Suspect(d->SuspectAfter() + Duration::Nanos(1)));
  // Well before: the usual 1 s gap is nowhere near suspicious.
  EXPECT_LT(d->Phi(last + Ms(1000)), 1e-6);
}

TEST(PhiAccrualDetectorTest, SuspectAgreesWithPhiAboveThresholdAwayFromTheBoundary) {
  // Suspect is decided without exp/log (for bit-identical simulations); it must still mean
  // phi > threshold, up to rounding right at the boundary.
  for (const double threshold : {1.0, 3.0, 8.0, 16.0, 100.0}) {
    PhiAccrualOptions o;
    o.threshold = threshold;
    o.acceptable_pause = Ms(500);
    auto d = Make(o);
    Rng rng(3);
    MonoTime t = AtMs(0);
    for (int i = 0; i < 300; ++i) {
      t += rng.Range(Ms(700), Ms(1300));
      d->Heartbeat(t);
    }
    const MonoTime boundary = d->SuspectAfter();
    for (int64_t ms = 0; ms <= 60'000; ms += 3) {
      const MonoTime now = t + Ms(ms);
      if (now > boundary - Duration::Micros(1) && now < boundary + Duration::Micros(1)) continue;
      EXPECT_EQ(d->Suspect(now), d->Phi(now) > threshold) << threshold << " " << ms;
    }
    const double at_boundary = d->Phi(boundary);
    EXPECT_NEAR(at_boundary, threshold, 1e-6 * threshold) << threshold;
  }
}

TEST(PhiAccrualDetectorTest, JitteryButRegularHeartbeatsStayWellBelowThreshold) {
  // Heartbeats every 1 s ± 200 ms (uniform), no acceptable pause to hide behind: the spread is
  // learned (std ≈ 115 ms), so no on-time heartbeat is ever preceded by suspicion -- but a 2.5 s
  // silence, far outside the learned spread, is.
  PhiAccrualOptions o;
  o.acceptable_pause = Duration::Zero();
  auto d = Make(o);
  Rng rng(11);
  MonoTime t = AtMs(0);
  d->Heartbeat(t);
  double phi_max = 0;
  for (int i = 0; i < 20000; ++i) {
    const MonoTime next = t + rng.Range(Ms(800), Ms(1200));
    if (i >= 100) {  // once the bootstrap is diluted
      phi_max = std::max(phi_max, d->Phi(next));
      EXPECT_FALSE(d->Suspect(next)) << i;
    }
    d->Heartbeat(next);
    t = next;
  }
  EXPECT_LT(phi_max, 3.0);
  EXPECT_GT(phi_max, 0.5);  // the jitter does move phi
  EXPECT_EQ(d->stats().intervals_skipped, 0u);
  EXPECT_NEAR(d->interval_std_ns(), 400e6 / std::sqrt(12.0), 10e6);
  EXPECT_TRUE(d->Suspect(t + Ms(2500)));
}

TEST(PhiAccrualDetectorTest, MinStdPreventsHairTriggerAfterPerfectlyRegularHeartbeats) {
  // Perfectly regular heartbeats give std = 0: without a floor, a heartbeat 1 ms late would be
  // "infinitely" suspicious. With min_std = 100 ms, 10% late is phi < 1; with a 1 ms floor the
  // same lateness is a conviction.
  PhiAccrualOptions o;
  o.acceptable_pause = Duration::Zero();
  auto floored = Make(o);
  o.min_std = Ms(1);
  auto sharp = Make(o);
  const MonoTime last = Regular(*floored, AtMs(0), Ms(1000), 1100);
  Regular(*sharp, AtMs(0), Ms(1000), 1100);
  ASSERT_EQ(floored->interval_std_ns(), 0.0);

  const MonoTime late = last + Ms(1100);
  EXPECT_LT(floored->Phi(late), 1.0);
  EXPECT_FALSE(floored->Suspect(late));
  EXPECT_GT(sharp->Phi(late), 8.0);
  EXPECT_TRUE(sharp->Suspect(late));
}

TEST(PhiAccrualDetectorTest, AcceptablePauseDelaysSuspicionByExactlyThePause) {
  // acceptable_pause shifts the mean, so the whole suspicion curve moves right by it.
  PhiAccrualOptions o;
  o.acceptable_pause = Duration::Zero();
  auto eager = Make(o);
  o.acceptable_pause = Duration::Seconds(3);
  auto patient = Make(o);
  const MonoTime last = Regular(*eager, AtMs(0), Ms(1000), 1100);
  Regular(*patient, AtMs(0), Ms(1000), 1100);

  const Duration shift = patient->SuspectAfter() - eager->SuspectAfter();
  EXPECT_LE((shift - Duration::Seconds(3)).nanos(), 1);
  EXPECT_GE((shift - Duration::Seconds(3)).nanos(), -1);
  EXPECT_TRUE(eager->Suspect(last + Ms(2000)));
  EXPECT_FALSE(patient->Suspect(last + Ms(2000)));
  EXPECT_FALSE(patient->Suspect(last + Ms(4500)));
  EXPECT_TRUE(patient->Suspect(last + Ms(4600)));
}

TEST(PhiAccrualDetectorTest, WindowEvictionForgetsOldIntervalsSoTheMeanFollowsTheRate) {
  // A window of 100: after the peer switches from 1 s to 500 ms heartbeats, the mean is exactly the
  // mix of what the window holds, and once 100 new intervals arrived nothing of the old rate is
  // left. Then slowing down to 2 s (not suspicious with the default pause) is learned the same way.
  PhiAccrualOptions o;
  o.window_max = 100;
  auto d = Make(o);
  MonoTime t = Regular(*d, AtMs(0), Ms(1000), 201);
  EXPECT_EQ(d->interval_mean_ns(), 1e9);
  for (int i = 0; i < 50; ++i) d->Heartbeat(t += Ms(500));
  EXPECT_EQ(d->samples(), 100u);
  EXPECT_EQ(d->interval_mean_ns(), 0.75e9);
  EXPECT_EQ(d->interval_std_ns(), 0.25e9);
  for (int i = 0; i < 50; ++i) d->Heartbeat(t += Ms(500));
  EXPECT_EQ(d->interval_mean_ns(), 0.5e9);
  EXPECT_EQ(d->interval_std_ns(), 0.0);
  for (int i = 0; i < 100; ++i) d->Heartbeat(t += Ms(2000));
  EXPECT_EQ(d->interval_mean_ns(), 2e9);
  EXPECT_EQ(d->stats().intervals_skipped, 0u);
}

TEST(PhiAccrualDetectorTest, IntervalEndingASuspicionIsNotLearned) {
  // Akka's rule: a peer back from a 60 s outage must not teach the detector that 60 s silences are
  // normal (that would blind it to the next outage).
  auto d = Make();
  MonoTime t = Regular(*d, AtMs(0), Ms(1000), 1100);
  d->Heartbeat(t += Duration::Seconds(60));
  EXPECT_EQ(d->stats().intervals_skipped, 1u);
  EXPECT_EQ(d->interval_mean_ns(), 1e9);
  EXPECT_EQ(d->last_heartbeat(), t);  // but the peer is alive again
  EXPECT_FALSE(d->Suspect(t + Ms(1000)));
  // A late-but-not-suspected heartbeat is learned.
  d->Heartbeat(t += Ms(4000));
  EXPECT_EQ(d->stats().intervals_skipped, 1u);
  EXPECT_GT(d->interval_mean_ns(), 1e9);
}

TEST(PhiAccrualDetectorTest, StaleAndDuplicateHeartbeatsAreIgnored) {
  // Out-of-order timestamps must not record zero or negative intervals (which would make the
  // detector hair-triggered) nor move the latest heartbeat back.
  auto d = Make();
  const MonoTime last = Regular(*d, AtMs(0), Ms(1000), 10);
  const double mean = d->interval_mean_ns();
  d->Heartbeat(last);
  d->Heartbeat(last - Ms(500));
  EXPECT_EQ(d->stats().stale_heartbeats, 2u);
  EXPECT_EQ(d->stats().heartbeats, 10u);
  EXPECT_EQ(d->interval_mean_ns(), mean);
  EXPECT_EQ(d->last_heartbeat(), last);
  EXPECT_EQ(d->Phi(last - Ms(300)), d->Phi(last));  // Δt clamps at 0
}

TEST(PhiAccrualDetectorTest, MillionHeartbeatsKeepMeanAndStdExact) {
  // Running sums in integer nanoseconds do not drift: after 10^6 heartbeats with ns-granular
  // random intervals, mean and std equal a fresh exact recomputation over the window, bit for bit.
  // The last 1000 intervals alternate 900/1100 ms so the true values are also known in closed form.
  PhiAccrualOptions o;
  o.window_max = 1000;
  auto d = Make(o);
  Rng rng(5);
  std::deque<int64_t> window;
  MonoTime t = AtMs(0);
  d->Heartbeat(t);
  auto check = [&] {
    UInt128 sum = 0;
    UInt128 sum_sq = 0;
    for (const int64_t v : window) {
      sum += static_cast<uint64_t>(v);
      sum_sq += static_cast<UInt128>(v) * static_cast<UInt128>(v);
    }
    const double n = static_cast<double>(window.size());
    const UInt128 m2 = static_cast<UInt128>(window.size()) * sum_sq - sum * sum;
    EXPECT_EQ(d->interval_mean_ns(), static_cast<double>(sum) / n);
    EXPECT_EQ(d->interval_std_ns(), std::sqrt(static_cast<double>(m2) / (n * n)));
  };
  constexpr int kHeartbeats = 1'000'000;
  for (int i = 1; i < kHeartbeats; ++i) {
    int64_t interval_ns = 0;
    if (i > kHeartbeats - 1001) {
      interval_ns = (i % 2 == 0) ? 900'000'000 : 1'100'000'000;
    } else {
      interval_ns = rng.Range(int64_t{500'000'000}, int64_t{1'500'000'000});
    }
    t += Duration::Nanos(interval_ns);
    d->Heartbeat(t);
    window.push_back(interval_ns);
    if (window.size() > 1000) window.pop_front();
    if (i % 100'000 == 0) check();
  }
  check();
  EXPECT_EQ(d->stats().heartbeats, static_cast<uint64_t>(kHeartbeats));
  EXPECT_EQ(d->stats().intervals_skipped, 0u);
  EXPECT_EQ(d->interval_mean_ns(), 1e9);
  EXPECT_EQ(d->interval_std_ns(), 1e8);
}

// --- LocalPauseGuard -----------------------------------------------------------------------------

TEST(LocalPauseGuardTest, StallLongerThanThresholdVetoesConvictionsForQuiet) {
  // Loop ticks every 100 ms, then stalls 6 s (> 5 s): from the stall until 5 s after the tick that
  // ended it, nobody may be convicted; then convictions resume.
  LocalPauseGuard guard;  // 5 s threshold, quiet = 5 s
  EXPECT_EQ(guard.quiet(), Duration::Seconds(5));
  MonoTime t = AtMs(0);
  for (int i = 0; i < 100; ++i) guard.Tick(t += Ms(100));
  EXPECT_TRUE(guard.MayConvict(t));
  EXPECT_TRUE(guard.MayConvict(t + Ms(5000)));   // a gap of exactly the threshold is no stall
  EXPECT_FALSE(guard.MayConvict(t + Ms(5001)));  // the stall is visible before the next tick
  t += Ms(6000);
  guard.Tick(t);
  EXPECT_EQ(guard.pauses(), 1u);
  EXPECT_EQ(guard.longest_gap(), Ms(6000));
  const MonoTime resumed = t;
  while (t < resumed + Ms(5000)) {
    EXPECT_FALSE(guard.MayConvict(t));
    guard.Tick(t += Ms(100));
  }
  EXPECT_FALSE(guard.MayConvict(resumed + Ms(5000) - Duration::Nanos(1)));
  EXPECT_TRUE(guard.MayConvict(resumed + Ms(5000)));
  EXPECT_EQ(guard.pauses(), 1u);
}

TEST(LocalPauseGuardTest, CustomQuietAndRepeatedStallsExtendTheVeto) {
  LocalPauseGuard guard(Ms(1000), Ms(300));
  guard.Tick(AtMs(0));
  guard.Tick(AtMs(1000));  // exactly the threshold: not a pause
  EXPECT_EQ(guard.pauses(), 0u);
  guard.Tick(AtMs(2500));  // 1.5 s
  EXPECT_EQ(guard.pauses(), 1u);
  EXPECT_FALSE(guard.MayConvict(AtMs(2799)));
  guard.Tick(AtMs(2700));
  guard.Tick(AtMs(4000));  // another stall during the quiet period
  EXPECT_EQ(guard.pauses(), 2u);
  EXPECT_FALSE(guard.MayConvict(AtMs(4299)));
  EXPECT_TRUE(guard.MayConvict(AtMs(4300)));
  guard.Tick(AtMs(3000));  // stale tick: ignored
  EXPECT_TRUE(guard.MayConvict(AtMs(4300)));
}

TEST(LocalPauseGuardTest, NoTickYetVetoesNothing) {
  LocalPauseGuard guard;
  EXPECT_TRUE(guard.MayConvict(AtMs(123'456'789)));
  EXPECT_EQ(guard.pauses(), 0u);
}

// --- FailureDetector -----------------------------------------------------------------------------

TEST(FailureDetectorTest, LocalStallSuspectsNobodyAfterResumingThenConvictsAfterQuiet) {
  // Three peers heartbeat every second; this node ticks every 100 ms. At t = 100 s its own loop
  // stalls for 6 s (GC), so every peer's phi is huge when it resumes -- but that silence was ours:
  // nobody is suspected. Peers 1 and 2 were fine all along (their queued heartbeats arrive);
  // peer 3 really died at t = 100 s. After the 5 s quiet period only peer 3 is convicted.
  auto fd = MakeFd();
  const NodeId p1(1), p2(2), p3(3);
  MonoTime t = AtMs(0);
  for (int ms = 0; ms <= 100'000; ms += 100) {
    t = AtMs(ms);
    fd->Tick(t);
    if (ms % 1000 == 0) {
      for (const NodeId p : {p1, p2, p3}) ASSERT_TRUE(fd->Heartbeat(p, t).ok());
    }
    for (const NodeId p : {p1, p2, p3}) ASSERT_FALSE(fd->Suspect(p, t)) << ms;
  }
  const MonoTime resumed = AtMs(106'000);
  for (const NodeId p : {p1, p2, p3}) {
    EXPECT_GT(fd->Phi(p, resumed), 30.0);
    EXPECT_TRUE(fd->detector(p)->Suspect(resumed));  // the bare detector would convict
    EXPECT_FALSE(fd->Suspect(p, resumed));           // before the first tick after the stall
  }
  fd->Tick(resumed);
  EXPECT_EQ(fd->guard().pauses(), 1u);
  for (const NodeId p : {p1, p2, p3}) EXPECT_FALSE(fd->Suspect(p, resumed));
  // The loop runs again; peers 1 and 2 are heard from, peer 3 stays silent.
  for (int ms = 106'000; ms <= 112'000; ms += 100) {
    t = AtMs(ms);
    fd->Tick(t);
    if (ms % 1000 == 0) {
      ASSERT_TRUE(fd->Heartbeat(p1, t).ok());
      ASSERT_TRUE(fd->Heartbeat(p2, t).ok());
    }
    const bool quiet_over = ms >= 111'000;
    EXPECT_EQ(fd->Suspect(p3, t), quiet_over) << ms;
    EXPECT_FALSE(fd->Suspect(p1, t)) << ms;
    EXPECT_FALSE(fd->Suspect(p2, t)) << ms;
  }
  // The 6 s interval that ended with the stall was not learned as normal.
  EXPECT_EQ(fd->detector(p1)->stats().intervals_skipped, 1u);
  EXPECT_EQ(fd->detector(p1)->interval_mean_ns(), 1e9);
}

TEST(FailureDetectorTest, HealthyNodeSuspectsASilentPeerAtItsSuspectAfter) {
  auto fd = MakeFd();
  const NodeId peer(7);
  MonoTime t = AtMs(0);
  for (int ms = 0; ms <= 30'000; ms += 100) {
    t = AtMs(ms);
    fd->Tick(t);
    if (ms % 1000 == 0) {
      ASSERT_TRUE(fd->Heartbeat(peer, t).ok());
    }
  }
  const MonoTime after = fd->detector(peer)->SuspectAfter();
  while (t + Ms(100) <= after) fd->Tick(t += Ms(100));
  EXPECT_FALSE(fd->Suspect(peer, after));
  EXPECT_TRUE(fd->Suspect(peer, after + Duration::Nanos(1)));
  EXPECT_DOUBLE_EQ(fd->Phi(peer, after), fd->detector(peer)->Phi(after));
}

TEST(FailureDetectorTest, UnknownPeersAreNeverSuspectedAndPeersAreBounded) {
  FailureDetectorOptions o;
  o.peers_max = 2;
  auto fd = MakeFd(o);
  EXPECT_FALSE(fd->Suspect(NodeId(9), AtMs(1'000'000)));
  EXPECT_EQ(fd->Phi(NodeId(9), AtMs(1'000'000)), 0.0);
  EXPECT_EQ(fd->detector(NodeId(9)), nullptr);
  ASSERT_TRUE(fd->Heartbeat(NodeId(1), AtMs(0)).ok());
  ASSERT_TRUE(fd->Heartbeat(NodeId(2), AtMs(0)).ok());
  ASSERT_TRUE(fd->Heartbeat(NodeId(1), AtMs(1000)).ok());  // known peers stay welcome
  EXPECT_EQ(fd->Heartbeat(NodeId(3), AtMs(1000)).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(fd->peers(), 2u);
  EXPECT_TRUE(fd->Suspect(NodeId(2), AtMs(60'000)));
  EXPECT_TRUE(fd->Remove(NodeId(2)));
  EXPECT_FALSE(fd->Remove(NodeId(2)));
  EXPECT_FALSE(fd->Suspect(NodeId(2), AtMs(60'000)));
  EXPECT_TRUE(fd->Heartbeat(NodeId(3), AtMs(60'000)).ok());
}

}  // namespace
}  // namespace faultline::lease
