// The PostgreSQL server crashes (SIGQUIT: immediate shutdown, no checkpoint, WAL replay at the next
// start) while four threads run claim + complete rounds, and is started again on the same data
// directory. fsync=on, synchronous_commit=on (the server defaults, stated by PgTestServer).
//
// Checked: every Complete that returned ok is replayed byte-identical after the restart (no
// acknowledged completion lost); callers see kUnavailable during the outage — and no other error
// anywhere but kAborted, a conflict that committed nothing and is retried — and complete new
// requests after it.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "faultline/adapters/open_store.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/core/random.h"
#include "faultline/idempotency/idempotency_keys.h"
#include "tests/integration/idempotency_real_util.h"
#include "tests/integration/pg_test_server.h"

namespace faultline::testing {
namespace {

using idempotency::ClaimState;
using idempotency::FingerprintOf;
using idempotency::IdempotencyKeys;
using SteadyClock = std::chrono::steady_clock;

// A response that differs per key in length and content, with NUL and high bytes.
std::string ResponseFor(const std::string& key) {
  Rng rng(std::hash<std::string>()(key));
  std::string out(static_cast<size_t>(rng.Uniform(300)), '\0');
  for (char& c : out) c = static_cast<char>(rng.Uniform(256));
  return key + std::string("\0", 1) + out;
}

struct Tally {
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> acked;  // key, response
  std::vector<std::string> other_errors;
  int unavailable = 0;
  int aborted = 0;
  int acked_after_restart = 0;
};

// One client: claim + complete rounds on fresh keys until `stop`. kAborted (a serialization
// failure that outlasted RunInTransaction's retries) committed nothing: the call is retried and
// counted, not an error.
void RunClient(IdempotencyKeys& keys, int t, const std::atomic<bool>& stop,
               const std::atomic<bool>& restarted, Tally& tally) {
  const auto fp = FingerprintOf("POST /restart");
  for (int n = 0; !stop.load(); ++n) {
    const std::string key = "t" + std::to_string(t) + "-" + std::to_string(n);
    const bool after = restarted.load();
    // True when the call should be retried.
    auto retry = [&](const Status& s) {
      std::lock_guard<std::mutex> lock(tally.mu);
      if (s.code() == StatusCode::kAborted) {
        ++tally.aborted;
        return true;
      }
      if (s.code() == StatusCode::kUnavailable) {
        ++tally.unavailable;
        return true;
      }
      tally.other_errors.push_back(key + ": " + s.ToString());
      return false;
    };
    Result<idempotency::Claim> claim = InternalError("not run");
    for (;;) {
      claim = keys.Acquire("restart", key, fp, Duration::Seconds(30));
      if (claim.ok() || claim.status().code() != StatusCode::kAborted) break;
      retry(claim.status());
    }
    if (!claim.ok()) {
      retry(claim.status());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;  // kUnavailable: the claim's outcome is unknown; the request is abandoned
    }
    if (claim->state != ClaimState::kClaimed) {
      std::lock_guard<std::mutex> lock(tally.mu);
      tally.other_errors.push_back(key + ": fresh key not claimed");
      continue;
    }
    const std::string response = ResponseFor(key);
    // kUnavailable from Complete: the outcome is unknown; the caller retries the same attempt
    // until the server answers (Complete of the same response by the same attempt is ok).
    for (;;) {
      const Status s = keys.Complete("restart", key, claim->attempt, response);
      if (s.ok()) {
        std::lock_guard<std::mutex> lock(tally.mu);
        tally.acked.emplace_back(key, response);
        if (after) ++tally.acked_after_restart;
        break;
      }
      if (!retry(s)) break;
      if (s.code() == StatusCode::kUnavailable) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  }
}

TEST(IdempotencyRealPgRestart, CrashAndRestartLoseNoAcknowledgedCompletion) {
  Result<std::unique_ptr<PgTestServer>> server = PgTestServer::Start();
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  OpenStoreOptions options;
  options.table = "idem_restart";
  options.connections_max = 8;
  const std::string uri = PgUri((*server)->conninfo());
  Result<std::unique_ptr<LocalStore>> store = OpenStore(uri, options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto keys = IdempotencyKeys::Create(**store, SystemClock::Default());
  ASSERT_TRUE(keys.ok());
  const auto fp = FingerprintOf("POST /restart");

  Tally tally;
  std::atomic<bool> stop{false};
  std::atomic<bool> restarted{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back(RunClient, std::ref(**keys), t, std::cref(stop), std::cref(restarted),
                         std::ref(tally));
  }

  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  const int unavailable_before = [&] {
    std::lock_guard<std::mutex> lock(tally.mu);
    return tally.unavailable;
  }();
  ASSERT_TRUE((*server)->Kill(SIGQUIT).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const Status restart = (*server)->Restart();
  restarted.store(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop.store(true);
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(restart.ok()) << restart.ToString();

  EXPECT_EQ(unavailable_before, 0);
  EXPECT_GT(tally.unavailable, 0) << "no caller saw the outage";
  EXPECT_GT(tally.acked_after_restart, 0) << "no request completed after the restart";
  for (const std::string& e : tally.other_errors) ADD_FAILURE() << "unexpected error " << e;
  std::printf("acknowledged completions: %zu (%d after the restart), kUnavailable seen: %d, "
              "kAborted retried: %d\n",
              tally.acked.size(), tally.acked_after_restart, tally.unavailable, tally.aborted);
  ASSERT_GT(tally.acked.size(), static_cast<size_t>(tally.acked_after_restart));

  // Checked through a fresh connection pool, as a client retrying after the crash would.
  Result<std::unique_ptr<LocalStore>> fresh = OpenStore(uri, options);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  auto replay_keys = IdempotencyKeys::Create(**fresh, SystemClock::Default());
  ASSERT_TRUE(replay_keys.ok());
  for (const auto& [key, response] : tally.acked) {
    Result<idempotency::Claim> replay =
        (*replay_keys)->Acquire("restart", key, fp, Duration::Seconds(30));
    ASSERT_TRUE(replay.ok()) << key << ": " << replay.status().ToString();
    EXPECT_EQ(replay->state, ClaimState::kCompleted) << key;
    EXPECT_TRUE(replay->response == response) << key << ": replay differs";
  }
}

}  // namespace
}  // namespace faultline::testing
