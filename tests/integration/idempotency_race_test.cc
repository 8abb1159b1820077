// Threads racing on one idempotency key, and duplicate inbox deliveries, against a real SQLite file
// and a real PostgreSQL server. Every thread has a connection of its own (a store object of its
// own), so the races are decided by the database, not by a lock in this process.
#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "faultline/adapters/system_clock.h"
#include "faultline/core/random.h"
#include "faultline/idempotency/inbox.h"
#include "src/idempotency/race_test_util.h"
#include "tests/integration/idempotency_real_util.h"

namespace faultline::testing {
namespace {

std::string StoreName(const ::testing::TestParamInfo<std::string>& param) { return param.param; }

using idempotency::Inbox;

class IdempotencyRealRace : public ::testing::TestWithParam<std::string> {};

// RaceAcquire (src/idempotency/race_test_util.h): 16 threads Acquire one key at once: exactly one
// kClaimed (attempt 1), all others kInProgress; after the winner completes, a second racing round
// all see kCompleted with the winner's bytes. Twenty keys, twenty independent races.
TEST_P(IdempotencyRealRace, ThreadsRacingAcquireHaveExactlyOneOwner) {
  Result<RealDb> db = MakeRealDb(GetParam());
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto open = [&]() -> std::unique_ptr<LocalStore> {
    Result<std::unique_ptr<LocalStore>> store = db->Open(2);
    FL_ASSERT_MSG(store.ok(), store.status().ToString().c_str());
    return std::move(store).value();
  };
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    idempotency::testing::RaceAcquire(open, 16, "race-key-" + std::to_string(round));
    if (HasFatalFailure()) return;
  }
}

// At-least-once delivery: 8 consumer threads (each its own connection, the same consumer name)
// receive every one of 40 messages, in different orders. Each delivery runs Inbox::Process with an
// effect that increments a per-message counter and a global one in the same transaction. Exactly
// one delivery per message must report "applied", every counter must be 1 and the global counter
// 40: the effects committed exactly once. A delivery that fails kAborted (the store gave up
// retrying a conflict; nothing committed) is delivered again, as a broker would.
TEST_P(IdempotencyRealRace, InboxDuplicateDeliveriesCommitEffectsOnce) {
  Result<RealDb> db = MakeRealDb(GetParam());
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  constexpr int kThreads = 8;
  constexpr int kMessages = 40;
  std::vector<std::unique_ptr<LocalStore>> stores;
  std::vector<std::unique_ptr<Inbox>> inboxes;
  for (int i = 0; i < kThreads; ++i) {
    Result<std::unique_ptr<LocalStore>> store = db->Open(1);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    stores.push_back(std::move(store).value());
    auto inbox = Inbox::Create(*stores.back(), SystemClock::Default(), "billing");
    ASSERT_TRUE(inbox.ok()) << inbox.status().ToString();
    inboxes.push_back(std::move(inbox).value());
  }
  std::atomic<int> applied{0}, duplicates{0}, redeliveries{0}, errors{0};
  std::vector<std::string> error_text(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<int> order(kMessages);
      for (int m = 0; m < kMessages; ++m) order[m] = m;
      Rng rng(1000 + static_cast<uint64_t>(t));
      rng.Shuffle(order.data(), order.size());
      start.arrive_and_wait();
      for (int m : order) {
        const std::string id = "msg-" + std::to_string(m);
        auto effect = [&](Transaction& txn) -> Status {
          for (const std::string& key : {"effect/" + id, std::string("effect/total")}) {
            FL_ASSIGN_OR_RETURN(std::optional<std::string> v, txn.Get(key));
            const int n = v ? std::stoi(*v) : 0;
            FL_RETURN_IF_ERROR(txn.Put(key, std::to_string(n + 1)));
          }
          return Status::Ok();
        };
        for (int delivery = 0;; ++delivery) {
          Result<bool> r = inboxes[t]->Process(id, effect);
          if (r.ok()) {
            (*r ? applied : duplicates).fetch_add(1);
            break;
          }
          if (r.status().code() != StatusCode::kAborted || delivery == 50) {
            errors.fetch_add(1);
            error_text[t] = r.status().ToString();
            break;
          }
          redeliveries.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (const std::string& e : error_text) EXPECT_EQ(e, "");
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(applied.load(), kMessages);
  EXPECT_EQ(duplicates.load(), kMessages * (kThreads - 1));
  Result<std::map<std::string, std::string>> dump = DumpStore(*stores[0]);
  ASSERT_TRUE(dump.ok()) << dump.status().ToString();
  for (int m = 0; m < kMessages; ++m) {
    EXPECT_EQ((*dump)["effect/msg-" + std::to_string(m)], "1") << "message " << m;
  }
  EXPECT_EQ((*dump)["effect/total"], std::to_string(kMessages));
  std::printf("inbox on %s: %d deliveries, %d applied, %d redelivered after kAborted\n",
              GetParam().c_str(), kThreads * kMessages, applied.load(), redeliveries.load());
}

INSTANTIATE_TEST_SUITE_P(Stores, IdempotencyRealRace, ::testing::Values("sqlite", "postgres"),
                         StoreName);

}  // namespace
}  // namespace faultline::testing
