// Processes racing, crashing and pausing around one idempotency key, against a real SQLite file and
// a real PostgreSQL server. Each process is a fresh idempotency_worker (posix_spawn + exec): it
// opens its own connections, so no SQLite or libpq handle ever crosses a fork. Leases run on the
// real wall clock (SystemClock).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "faultline/adapters/system_clock.h"
#include "faultline/idempotency/idempotency_keys.h"
#include "tests/integration/idempotency_real_util.h"

namespace faultline::testing {
namespace {

std::string StoreName(const ::testing::TestParamInfo<std::string>& param) { return param.param; }

using idempotency::ClaimState;
using idempotency::FingerprintOf;
using idempotency::IdempotencyKeys;
using SteadyClock = std::chrono::steady_clock;

class IdempotencyRealProcess : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    Result<RealDb> db = MakeRealDb(GetParam());
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
    Result<std::unique_ptr<LocalStore>> store = db_.Open(2);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  std::unique_ptr<Worker> Spawn(std::vector<std::string> args) {
    args.insert(args.begin(), {db_.uri, db_.table});
    Result<std::unique_ptr<Worker>> worker = Worker::Spawn(args);
    FL_ASSERT_MSG(worker.ok(), worker.status().ToString().c_str());
    return std::move(worker).value();
  }

  std::string Line(Worker& worker) {
    Result<std::string> line = worker.ReadLine();
    return line.ok() ? *line : "<" + line.status().ToString() + ">";
  }

  std::map<std::string, std::string> Dump() {
    Result<std::map<std::string, std::string>> dump = DumpStore(*store_);
    FL_ASSERT_MSG(dump.ok(), dump.status().ToString().c_str());
    return std::move(dump).value();
  }

  // What a client retrying the worker's request sees now, from this process.
  Result<idempotency::Claim> Replay(const std::string& key) {
    auto keys = IdempotencyKeys::Create(*store_, SystemClock::Default());
    FL_RETURN_IF_ERROR(keys.status());
    return (*keys)->Acquire("worker", key, FingerprintOf("POST /worker"), Duration::Seconds(60));
  }

  RealDb db_;
  std::unique_ptr<LocalStore> store_;
};

// 8 processes, released together (their stdin closed in one loop), Acquire one key: exactly one
// "claimed 1", every other "in_progress 1". Five keys, five races.
TEST_P(IdempotencyRealProcess, ProcessesRacingAcquireHaveExactlyOneWinner) {
  constexpr int kProcesses = 8;
  for (int round = 0; round < 5; ++round) {
    const std::string key = "proc-race-" + std::to_string(round);
    std::vector<std::unique_ptr<Worker>> workers;
    for (int i = 0; i < kProcesses; ++i) workers.push_back(Spawn({"race", key}));
    for (auto& w : workers) ASSERT_EQ(Line(*w), "ready");
    for (auto& w : workers) w->CloseStdin();
    int winners = 0;
    for (auto& w : workers) {
      const std::string result = Line(*w);
      if (result == "claimed 1") {
        ++winners;
      } else {
        EXPECT_EQ(result, "in_progress 1") << "round " << round;
      }
      Result<int> status = w->Wait();
      ASSERT_TRUE(status.ok()) << status.status().ToString();
      EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
    }
    EXPECT_EQ(winners, 1) << "round " << round;
  }
}

// A holder SIGKILLed between Acquire and Complete: within its lease another process gets
// in_progress; after it, another process takes the key over as attempt 2 and completes. The dead
// attempt's late Complete (replayed by a third process) is kFencedOut and writes nothing, before
// and after the successor completed; a retry then replays the successor's response.
TEST_P(IdempotencyRealProcess, KilledHolderIsTakenOverAfterItsLease) {
  constexpr int kLeaseMs = 1500;
  const std::string key = "killed";
  const auto spawned = SteadyClock::now();
  std::unique_ptr<Worker> a = Spawn({"hold", key, std::to_string(kLeaseMs)});
  ASSERT_EQ(Line(*a), "claimed 1");
  const auto claimed = SteadyClock::now();
  a->Signal(SIGKILL);
  Result<int> status = a->Wait();
  ASSERT_TRUE(status.ok() && WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL);

  std::unique_ptr<Worker> early = Spawn({"hold", key, std::to_string(kLeaseMs)});
  const std::string early_result = Line(*early);
  // A's lease ends no earlier than spawned + lease; `early` acquired before this point.
  if (SteadyClock::now() < spawned + std::chrono::milliseconds(kLeaseMs)) {
    EXPECT_EQ(early_result, "in_progress 1");
  } else {
    std::printf("note: the machine was too slow to observe the live lease (%s)\n",
                early_result.c_str());
  }
  early->CloseStdin();

  std::this_thread::sleep_until(claimed + std::chrono::milliseconds(kLeaseMs + 50));
  std::unique_ptr<Worker> b = Spawn({"hold", key, "60000"});
  ASSERT_EQ(Line(*b), "claimed 2");

  auto late_complete = [&] {
    const auto before = Dump();
    std::unique_ptr<Worker> late = Spawn({"complete", key, "1", "late-response-of-attempt-1"});
    EXPECT_EQ(Line(*late), "FENCED_OUT");
    EXPECT_EQ(Dump(), before) << "a fenced Complete wrote something";
  };
  late_complete();
  ASSERT_TRUE(b->WriteLine("complete response-of-attempt-2").ok());
  EXPECT_EQ(Line(*b), "OK");
  late_complete();

  Result<idempotency::Claim> replay = Replay(key);
  ASSERT_TRUE(replay.ok()) << replay.status().ToString();
  EXPECT_EQ(replay->state, ClaimState::kCompleted);
  EXPECT_EQ(replay->attempt, 2u);
  EXPECT_EQ(replay->response, "response-of-attempt-2");
}

// A holder SIGSTOPped past its lease (a GC pause, a VM migration): a second process takes over as
// attempt 2. SIGCONTed, the paused process goes on to Complete: kFencedOut, nothing written —
// both before and after attempt 2 completed. Retries replay attempt 2's response.
TEST_P(IdempotencyRealProcess, PausedHolderIsFencedOutAfterTakeover) {
  constexpr int kLeaseMs = 1000;
  const std::string key = "paused";
  std::unique_ptr<Worker> a = Spawn({"hold", key, std::to_string(kLeaseMs)});
  ASSERT_EQ(Line(*a), "claimed 1");
  const auto claimed = SteadyClock::now();
  a->Signal(SIGSTOP);
  std::this_thread::sleep_until(claimed + std::chrono::milliseconds(kLeaseMs + 50));
  std::unique_ptr<Worker> b = Spawn({"hold", key, "60000"});
  ASSERT_EQ(Line(*b), "claimed 2");

  auto before = Dump();
  a->Signal(SIGCONT);
  ASSERT_TRUE(a->WriteLine("complete response-of-paused-attempt-1").ok());
  EXPECT_EQ(Line(*a), "FENCED_OUT");
  EXPECT_EQ(Dump(), before);

  ASSERT_TRUE(b->WriteLine("complete response-of-attempt-2").ok());
  EXPECT_EQ(Line(*b), "OK");
  before = Dump();
  ASSERT_TRUE(a->WriteLine("complete response-of-paused-attempt-1").ok());
  EXPECT_EQ(Line(*a), "FENCED_OUT");
  EXPECT_EQ(Dump(), before);

  Result<idempotency::Claim> replay = Replay(key);
  ASSERT_TRUE(replay.ok()) << replay.status().ToString();
  EXPECT_EQ(replay->state, ClaimState::kCompleted);
  EXPECT_EQ(replay->attempt, 2u);
  EXPECT_EQ(replay->response, "response-of-attempt-2");
}

INSTANTIATE_TEST_SUITE_P(Stores, IdempotencyRealProcess, ::testing::Values("sqlite", "postgres"),
                         StoreName);

}  // namespace
}  // namespace faultline::testing
