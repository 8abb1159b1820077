#include "faultline/idempotency/phased_operation.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "src/idempotency/test_util.h"

namespace faultline::idempotency {
namespace {

using testing::Must;
using testing::MustOk;
using testing::SimStoreEnv;

constexpr Duration kLease = Duration::Seconds(30);

// A foreign service that deduplicates by idempotency key, as Stripe does: the first call with a
// key executes, later ones return the first result.
struct Downstream {
  Result<std::string> Call(const std::string& key, const std::string& what) {
    auto it = results.find(key);
    if (it != results.end()) return it->second;
    ++executions[what];
    const std::string result = what + "_" + std::to_string(results.size() + 1);
    results.emplace(key, result);
    return result;
  }
  std::map<std::string, std::string> results;
  std::map<std::string, int> executions;
};

Status Increment(Transaction& txn, const std::string& counter) {
  FL_ASSIGN_OR_RETURN(std::optional<std::string> v, txn.Get(counter));
  const int n = v ? std::stoi(*v) : 0;
  return txn.Put(counter, std::to_string(n + 1));
}

// Where an attempt dies: before step i's call, after its call (before its commit), or (i == 3)
// before finish.
struct CrashPoint {
  size_t step = SIZE_MAX;
  bool after_call = false;
};

// Brandur's rocket ride: create the ride locally, charge the card, send the receipt, respond.
class RideTest : public ::testing::Test {
 protected:
  RideTest() { keys_ = Must(IdempotencyKeys::Create(*env_.store, env_.clock)); }

  std::vector<PhasedStep> Steps(CrashPoint crash) {
    auto call = [this, crash](size_t i, const char* what) {
      return [this, crash, i, what](const StepContext& ctx) -> Result<std::string> {
        if (crash.step == i && !crash.after_call) return UnavailableError("crash before call");
        FL_ASSIGN_OR_RETURN(std::string r, downstream_.Call(ctx.step_key, what));
        if (crash.step == i && crash.after_call) return UnavailableError("crash after call");
        return r;
      };
    };
    std::vector<PhasedStep> steps;
    steps.push_back(
        {"ride_created", nullptr, [](Transaction& txn, const StepContext&, std::string_view) {
           return Increment(txn, "count/ride");
         }});
    if (crash.step == 0) {
      steps[0].call = [](const StepContext&) -> Result<std::string> {
        return UnavailableError("crash before the first commit");
      };
    }
    steps.push_back({"charge_created", call(1, "charge"),
                     [](Transaction& txn, const StepContext&, std::string_view charge) {
                       FL_RETURN_IF_ERROR(txn.Put("charge", charge));
                       return Increment(txn, "count/charge");
                     }});
    steps.push_back({"receipt_sent", call(2, "receipt"),
                     [](Transaction& txn, const StepContext&, std::string_view) {
                       return Increment(txn, "count/receipt");
                     }});
    return steps;
  }

  Result<PhasedOutcome> Run(CrashPoint crash = {}) {
    const std::vector<PhasedStep> steps = Steps(crash);
    const PhasedRequest request{"user_1", "ride-42", FingerprintOf("POST /rides"), kLease};
    return RunPhased(*keys_, *env_.store, request, steps,
                     [crash](Transaction& txn, const StepContext&) -> Result<std::string> {
                       if (crash.step == 3) return UnavailableError("crash before finish");
                       FL_ASSIGN_OR_RETURN(std::optional<std::string> charge, txn.Get("charge"));
                       return "201 ride paid with " + charge.value_or("?");
                     });
  }

  std::string Counter(const std::string& name) {
    const auto dump = env_.Dump();
    auto it = dump.find(name);
    return it == dump.end() ? "0" : it->second;
  }

  SimStoreEnv env_;
  std::unique_ptr<IdempotencyKeys> keys_;
  Downstream downstream_;
};

TEST_F(RideTest, StepKeysAreStablePrintableAndDistinct) {
  EXPECT_EQ(StepKey("u", "k", "a"), StepKey("u", "k", "a"));
  EXPECT_NE(StepKey("u", "k", "a"), StepKey("u", "k", "b"));
  EXPECT_NE(StepKey("u", "ka", ""), StepKey("u", "k", "a"));  // the separators matter
  EXPECT_EQ(StepKey("u", "k", "a").size(), 64u);
}

TEST_F(RideTest, UninterruptedRunThenReplay) {
  const PhasedOutcome first = Must(Run());
  EXPECT_EQ(first.claim.state, ClaimState::kClaimed);
  EXPECT_EQ(first.steps_run, 3u);
  EXPECT_EQ(first.response, "201 ride paid with charge_1");
  const PhasedOutcome again = Must(Run());
  EXPECT_EQ(again.claim.state, ClaimState::kCompleted);
  EXPECT_EQ(again.response, first.response);
  EXPECT_EQ(again.steps_run, 0u);
  EXPECT_EQ(Counter("count/ride"), "1");
  EXPECT_EQ(downstream_.executions["charge"], 1);
}

TEST_F(RideTest, CrashAtEveryPointResumesAtTheRightStepAndRepeatsNoEffect) {
  // For each crash point: the dead attempt keeps the key (409 until its lease runs out), the
  // takeover resumes after the last committed step, and in the end every local effect was applied
  // once and every foreign call executed once, whatever was repeated.
  for (size_t step = 0; step <= 3; ++step) {
    for (bool after_call : {false, true}) {
      if ((step == 0 || step == 3) && after_call) continue;  // those steps make no call
      SCOPED_TRACE("crash at step " + std::to_string(step) + (after_call ? " after call" : ""));
      env_.CrashAndReopen();
      keys_ = Must(IdempotencyKeys::Create(*env_.store, env_.clock));
      MustOk(RunInTransaction(*env_.store, [](Transaction& txn) -> Status {
        for (const KeyValue& kv : Must(txn.Scan("", "", 1000))) {
          FL_RETURN_IF_ERROR(txn.Delete(kv.key).status());
        }
        return Status::Ok();
      }));
      downstream_ = {};

      const Result<PhasedOutcome> crashed = Run({step, after_call});
      EXPECT_EQ(crashed.status().code(), StatusCode::kUnavailable);
      env_.CrashAndReopen();  // the process dies with it
      keys_ = Must(IdempotencyKeys::Create(*env_.store, env_.clock));
      EXPECT_EQ(Must(Run()).claim.state, ClaimState::kInProgress);

      env_.clock.Advance(kLease);
      const PhasedOutcome resumed = Must(Run());
      EXPECT_EQ(resumed.claim.state, ClaimState::kClaimed);
      EXPECT_EQ(resumed.claim.attempt, 2u);
      // Steps 0..step-1 committed before the crash; the retry runs the rest.
      EXPECT_EQ(resumed.steps_run, 3 - std::min<size_t>(step, 3));
      EXPECT_EQ(resumed.response, "201 ride paid with charge_1");
      EXPECT_EQ(Counter("count/ride"), "1");
      EXPECT_EQ(Counter("count/charge"), "1");
      EXPECT_EQ(Counter("count/receipt"), "1");
      EXPECT_EQ(downstream_.executions["charge"], 1);
      EXPECT_EQ(downstream_.executions["receipt"], 1);
      EXPECT_EQ(Must(Run()).response, resumed.response);
      env_.clock.Advance(keys_->options().retention);  // the next iteration starts clean
    }
  }
}

TEST_F(RideTest, PausedAttemptIsFencedAtItsNextCommitAndItsLateCompleteIsRejected) {
  // Attempt 1 stalls inside the charge call past its lease; attempt 2 takes over and finishes the
  // whole request. When attempt 1 resumes, its commit of the charge step is fenced (its effects
  // roll back with the failed Checkpoint) and so is a late Complete.
  bool stalled = false;
  std::vector<PhasedStep> steps = Steps({});
  std::optional<PhasedOutcome> successor;
  const auto charge = steps[1].call;
  steps[1].call = [&](const StepContext& ctx) -> Result<std::string> {
    if (!stalled) {
      stalled = true;
      env_.clock.Advance(kLease + Duration::Seconds(1));
      successor = Must(Run());
    }
    return charge(ctx);
  };
  const PhasedRequest request{"user_1", "ride-42", FingerprintOf("POST /rides"), kLease};
  const Result<PhasedOutcome> paused = RunPhased(
      *keys_, *env_.store, request, steps,
      [](Transaction&, const StepContext&) -> Result<std::string> { return std::string("late"); });
  EXPECT_EQ(paused.status().code(), StatusCode::kFencedOut);
  ASSERT_TRUE(successor.has_value());
  EXPECT_EQ(successor->claim.attempt, 2u);
  EXPECT_EQ(successor->claim.recovery_point, "ride_created");
  EXPECT_EQ(successor->steps_run, 2u);
  EXPECT_EQ(Counter("count/ride"), "1");
  EXPECT_EQ(Counter("count/charge"), "1");
  EXPECT_EQ(downstream_.executions["charge"], 1);  // attempt 1's call was deduplicated
  EXPECT_EQ(keys_->Complete("user_1", "ride-42", 1, "late").code(), StatusCode::kFencedOut);
  EXPECT_EQ(Must(Run()).response, successor->response);
}

TEST_F(RideTest, BadStepListsAndUnknownRecoveryPointsRunNothing) {
  std::vector<PhasedStep> steps = Steps({});
  steps[2].name = steps[1].name;
  const PhasedRequest request{"user_1", "ride-42", FingerprintOf("POST /rides"), kLease};
  auto finish = [](Transaction&, const StepContext&) -> Result<std::string> {
    return std::string("ok");
  };
  EXPECT_EQ(RunPhased(*keys_, *env_.store, request, steps, finish).status().code(),
            StatusCode::kInvalidArgument);
  steps = Steps({});
  steps[0].name = "";
  EXPECT_EQ(RunPhased(*keys_, *env_.store, request, steps, finish).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(env_.Dump().empty());

  // A recovery point from a step list that no longer has that step.
  const Claim claim = Must(keys_->Acquire("user_1", "ride-42", request.fingerprint, kLease));
  MustOk(RunInTransaction(*env_.store, [&](Transaction& txn) {
    return keys_->Checkpoint(txn, "user_1", "ride-42", claim.attempt, "renamed_step", kLease);
  }));
  env_.clock.Advance(kLease);
  EXPECT_EQ(RunPhased(*keys_, *env_.store, request, Steps({}), finish).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(Counter("count/ride"), "0");
}

}  // namespace
}  // namespace faultline::idempotency
