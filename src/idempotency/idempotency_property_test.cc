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

// One interleaving. Invariants, checked after every step:
//  - at most one owner: when a client is granted a claim, no other client holds an attempt whose
//    lease is still running and that has not ended;
//  - attempts granted are strictly increasing (until Expire deletes the record);
//  - a successful Complete or Checkpoint comes only from the newest attempt;
//  - one completed response per key: every replay returns exactly the bytes of the one Complete
//    that succeeded, and nobody is granted the key while that response is within retention.
// Clients forget a claim `retention` after it ended: the documented bound under which attempt
// numbers may be reused after Expire deleted the record.
void RunInterleaving(const std::vector<std::tuple<uint8_t, uint8_t, uint16_t>>& ops) {
  SimStoreEnv env;
  KeyOptions options;
  options.retention = Duration::Seconds(20);
  auto keys = Must(IdempotencyKeys::Create(*env.store, env.clock, options));
  const Fingerprint fps[2] = {FingerprintOf("request A"), FingerprintOf("request B")};
  std::optional<Holding> held[kClients];
  uint64_t newest_attempt = 0;
  std::optional<std::string> completed;  // the response of the current generation
  WallTime completed_at;

  for (const auto& [kind, client_raw, arg] : ops) {
    const int client = client_raw % kClients;
    const WallTime now = env.clock.WallNow();
    for (auto& h : held) {
      // A claim ends at the latest when its lease runs out; `retention` later it may be deleted.
      if (h && now >= std::min(h->ended_at, h->lease_until) + options.retention) h.reset();
    }
    std::optional<Holding>& mine = held[client];
    switch (kind % 6) {
      case 0: {  // Acquire
        const Duration lease = Duration::Millis(10 + arg % 5000);
        const Claim claim = Must(keys->Acquire("s", "k", fps[arg % 2], lease));
        if (claim.state == ClaimState::kClaimed) {
          for (int other = 0; other < kClients; ++other) {
            const auto& h = held[other];
            if (other == client || !h) continue;
            RC_ASSERT(!(h->ended_at == WallTime::Max() && h->lease_until > now));
            if (h->ended_at == WallTime::Max()) held[other]->ended_at = h->lease_until;
          }
          if (completed) RC_ASSERT(now >= completed_at + options.retention);
          RC_ASSERT(claim.attempt > newest_attempt || claim.attempt == 1);
          newest_attempt = claim.attempt;
          completed.reset();
          mine = Holding{claim.attempt, now + lease};
        } else if (claim.state == ClaimState::kCompleted) {
          RC_ASSERT(completed.has_value());
          RC_ASSERT(claim.response == *completed);
        } else if (claim.state == ClaimState::kInProgress) {
          RC_ASSERT(claim.retry_after > Duration::Zero());
        }
        break;
      }
      case 1: {  // Complete with a response unique to (client, attempt)
        if (!mine) break;
        const std::string response =
            "c" + std::to_string(client) + "a" + std::to_string(mine->attempt) +
            std::string(arg % 3, '\0');
        const Status s = keys->Complete("s", "k", mine->attempt, response);
        if (s.ok()) {
          RC_ASSERT(mine->attempt == newest_attempt);
          if (completed) RC_ASSERT(*completed == response);
          if (!completed) completed_at = now;
          completed = response;
          if (mine->ended_at == WallTime::Max()) mine->ended_at = now;
        } else {
          RC_ASSERT(s.code() == StatusCode::kFencedOut || s.code() == StatusCode::kNotFound ||
                    s.code() == StatusCode::kFailedPrecondition);
        }
        break;
      }
      case 2: {  // Release
        if (!mine) break;
        const Status s = keys->Release("s", "k", mine->attempt);
        if (s.ok()) {
          RC_ASSERT(mine->attempt == newest_attempt && !completed);
          if (mine->ended_at == WallTime::Max()) mine->ended_at = now;
        }
        break;
      }
      case 3: {  // Checkpoint, extending the lease
        if (!mine) break;
        const Duration lease = Duration::Millis(10 + arg % 5000);
        const Status s = RunInTransaction(*env.store, [&](Transaction& txn) {
          return keys->Checkpoint(txn, "s", "k", mine->attempt, "p", lease);
        });
        if (s.ok()) {
          RC_ASSERT(mine->attempt == newest_attempt && !completed);
          RC_ASSERT(mine->ended_at == WallTime::Max() || mine->ended_at >= now);
          mine->lease_until = now + lease;
          mine->ended_at = WallTime::Max();
        }
        break;
      }
      case 4:
        env.clock.Advance(Duration::Millis(arg % 6000));
        break;
      case 5:
        if (Must(keys->Expire()) > 0) {
          newest_attempt = 0;  // the record is gone; the next claim starts at attempt 1
          completed.reset();
        }
        break;
    }
  }
}

RC_GTEST_PROP(IdempotencyKeysProperty, NoTwoOwnersAndOneResponsePerKey, ()) {
  const auto ops = *rc::gen::container<std::vector<std::tuple<uint8_t, uint8_t, uint16_t>>>(
      rc::gen::tuple(rc::gen::arbitrary<uint8_t>(), rc::gen::arbitrary<uint8_t>(),
                     rc::gen::arbitrary<uint16_t>()));
  RunInterleaving(ops);
}

TEST(IdempotencyKeysRace, ThreadsRacingAcquireOnLogStoreYieldOneOwner) {
  SimStoreEnv env;
  std::mutex mu;
  for (int round = 0; round < 20; ++round) {
    testing::RaceAcquire(
        [&] { return std::make_unique<testing::LockedStore>(*env.store, mu); }, 8,
        "key-" + std::to_string(round));
  }
}

}  // namespace
}  // namespace faultline::idempotency
