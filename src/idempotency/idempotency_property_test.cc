// Properties of IdempotencyKeys under random interleavings of several clients, and the thread race
// of race_test_util.h on LogStore.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "faultline/idempotency/idempotency_keys.h"
#include "src/idempotency/race_test_util.h"
#include "src/idempotency/test_util.h"

namespace faultline::idempotency {
namespace {

using testing::Must;
using testing::SimStoreEnv;

constexpr int kClients = 3;

// What a client believes it holds.
struct Holding {
  uint64_t attempt = 0;
  WallTime lease_until;
  WallTime ended_at = WallTime::Max();  // when it completed, released or lost the claim
};

// One interleaving of three clients on one key. Invariants, checked after every step:
//  - at most one owner: when a client is granted a claim, no other client holds an attempt whose
//    lease is still running and that has not ended;
//  - attempts granted are strictly increasing (until Expire deletes the record);
//  - a successful Complete, Checkpoint or Release comes only from the newest attempt;
//  - one completed response per key: every replay returns exactly the bytes of the one Complete
//    that succeeded, and nobody is granted the key while that response is within retention.
// Clients forget a claim `retention` after it ended (at the latest when its lease ran out): the
// documented bound under which attempt numbers may be reused after Expire deleted the record.
class Interleaving {
 public:
  Interleaving() {
    options_.retention = Duration::Seconds(20);
    options_.lease_min = Duration::Millis(1);
    keys_ = Must(IdempotencyKeys::Create(*env_.store, env_.clock, options_));
  }

  void Step(uint8_t kind, int client, uint16_t arg) {
    now_ = env_.clock.WallNow();
    for (auto& h : held_) {
      if (h && now_ >= std::min(h->ended_at, h->lease_until) + options_.retention) h.reset();
    }
    switch (kind % 6) {
      case 0:
        return Acquire(client, arg);
      case 1:
        return Complete(client, arg);
      case 2:
        return Release(client);
      case 3:
        return Checkpoint(client, arg);
      case 4:
        return Advance(arg);
      default:
        if (Must(keys_->Expire()) > 0) {
          newest_attempt_ = 0;  // the record is gone; the next claim starts at attempt 1
          completed_.reset();
        }
    }
  }

 private:
  // Leases of 2..5 ms and clock steps of 0..3 ms land many steps in the last millisecond of a
  // lease or exactly at its end, where an early or late takeover would show; one step in 32
  // jumps past retention.
  static Duration Lease(uint16_t arg) { return Duration::Millis(2 + (arg >> 4) % 4); }
  void Advance(uint16_t arg) {
    env_.clock.Advance(arg % 32 == 0 ? options_.retention : Duration::Millis((arg >> 5) % 4));
  }

  void Acquire(int client, uint16_t arg) {
    const Duration lease = Lease(arg);
    const Claim claim = Must(keys_->Acquire("s", "k", fps_[arg % 4 == 0], lease));
    if (claim.state == ClaimState::kClaimed) {
      for (int other = 0; other < kClients; ++other) {
        std::optional<Holding>& h = held_[other];
        if (other == client || !h || h->ended_at != WallTime::Max()) continue;
        RC_ASSERT(h->lease_until <= now_);  // its lease ran out: it may be taken over
        h->ended_at = h->lease_until;
      }
      if (completed_) RC_ASSERT(now_ >= completed_at_ + options_.retention);
      RC_ASSERT(claim.attempt > newest_attempt_ || claim.attempt == 1);
      newest_attempt_ = claim.attempt;
      completed_.reset();
      held_[client] = Holding{claim.attempt, now_ + lease};
    } else if (claim.state == ClaimState::kCompleted) {
      RC_ASSERT(completed_.has_value());
      RC_ASSERT(claim.response == *completed_);
    } else if (claim.state == ClaimState::kInProgress) {
      RC_ASSERT(claim.retry_after > Duration::Zero());
    }
  }

  // A response unique to (client, attempt), with 0..2 trailing NULs.
  void Complete(int client, uint16_t arg) {
    std::optional<Holding>& mine = held_[client];
    if (!mine) return;
    const std::string response = "c" + std::to_string(client) + "a" +
                                 std::to_string(mine->attempt) + std::string(arg % 3, '\0');
    const Status s = keys_->Complete("s", "k", mine->attempt, response);
    if (!s.ok()) {
      RC_ASSERT(s.code() == StatusCode::kFencedOut || s.code() == StatusCode::kNotFound ||
                s.code() == StatusCode::kFailedPrecondition);
      return;
    }
    RC_ASSERT(mine->attempt == newest_attempt_);
    if (completed_) RC_ASSERT(*completed_ == response);
    if (!completed_) completed_at_ = now_;
    completed_ = response;
    if (mine->ended_at == WallTime::Max()) mine->ended_at = now_;
  }

  void Release(int client) {
    std::optional<Holding>& mine = held_[client];
    if (!mine || !keys_->Release("s", "k", mine->attempt).ok()) return;
    RC_ASSERT(mine->attempt == newest_attempt_ && !completed_);
    if (mine->ended_at == WallTime::Max()) mine->ended_at = now_;
  }

  void Checkpoint(int client, uint16_t arg) {
    std::optional<Holding>& mine = held_[client];
    if (!mine) return;
    const Duration lease = Lease(arg);
    const Status s = RunInTransaction(*env_.store, [&](Transaction& txn) {
      return keys_->Checkpoint(txn, "s", "k", mine->attempt, "p", lease);
    });
    if (!s.ok()) return;
    RC_ASSERT(mine->attempt == newest_attempt_ && !completed_);
    mine->lease_until = now_ + lease;
    mine->ended_at = WallTime::Max();
  }

  SimStoreEnv env_;
  KeyOptions options_;
  std::unique_ptr<IdempotencyKeys> keys_;
  // Mostly request A; request B (one claim in four) exercises the mismatch answers.
  const Fingerprint fps_[2] = {FingerprintOf("request A"), FingerprintOf("request B")};
  std::optional<Holding> held_[kClients];
  uint64_t newest_attempt_ = 0;
  std::optional<std::string> completed_;  // the response of the current generation
  WallTime completed_at_;
  WallTime now_;
};

RC_GTEST_PROP(IdempotencyKeysProperty, NoTwoOwnersAndOneResponsePerKey, ()) {
  const auto ops = *rc::gen::container<std::vector<std::tuple<uint8_t, uint8_t, uint16_t>>>(
      *rc::gen::inRange<size_t>(0, 300),
      rc::gen::tuple(rc::gen::arbitrary<uint8_t>(), rc::gen::arbitrary<uint8_t>(),
                     rc::gen::arbitrary<uint16_t>()));
  Interleaving run;
  for (const auto& [kind, client, arg] : ops) run.Step(kind, client % kClients, arg);
}

TEST(IdempotencyKeysRace, ThreadsRacingAcquireOnLogStoreYieldOneOwner) {
  SimStoreEnv env;
  std::mutex mu;
  for (int round = 0; round < 20; ++round) {
    testing::RaceAcquire([&] { return std::make_unique<testing::LockedStore>(*env.store, mu); }, 8,
                         "key-" + std::to_string(round));
  }
}

}  // namespace
}  // namespace faultline::idempotency
