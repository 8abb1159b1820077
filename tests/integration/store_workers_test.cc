// StoreWorkers: transactions on a real store run off the node's loop, which keeps serving its
// other callbacks meanwhile; completions come back on the loop thread; the queue is bounded; a
// coroutine destroyed mid-transaction is never resumed.
#include "faultline/adapters/store_workers.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "faultline/adapters/sqlite_store.h"
#include "faultline/env/task.h"

namespace faultline {
namespace {

// A stand-in for the real runtime's loop: a thread-safe queue drained by the test's thread.
class TestLoop {
 public:
  PostToLoop poster() {
    return [this](std::function<void()> fn) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        queue_.push_back(std::move(fn));
      }
      cv_.notify_one();
    };
  }
  // Runs posted callbacks until `done()` or the timeout; false on timeout.
  bool RunUntil(const std::function<bool()>& done, std::chrono::seconds timeout =
                                                       std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (!cv_.wait_until(lock, deadline, [this] { return !queue_.empty(); })) return false;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
    return true;
  }
  // Runs every callback queued now; returns how many ran.
  int Drain() {
    std::deque<std::function<void()>> ready;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready.swap(queue_);
    }
    for (auto& fn : ready) fn();
    return static_cast<int>(ready.size());
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
};

class StoreWorkersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/flworkers-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    SqliteStoreOptions options;
    options.path = dir_ + "/w.db";
    options.synchronous = SqliteSynchronous::kNormal;
    store_ = std::move(SqliteStore::Open(options)).value();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  std::unique_ptr<SqliteStore> store_;
  TestLoop loop_;
};

TEST_F(StoreWorkersTest, LoopKeepsServingWhileATransactionBlocks) {
  // One transaction blocks (a stand-in for a slow fsync or an unreachable server) until the loop
  // itself releases it: only possible if the loop was never stalled by it.
  StoreWorkersOptions options;
  options.threads = 2;
  std::unique_ptr<StoreWorkers> workers =
      std::move(StoreWorkers::Create(*store_, loop_.poster(), options)).value();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  const std::thread::id loop_thread = std::this_thread::get_id();
  int completed = 0;
  bool completions_on_loop = true;
  ASSERT_TRUE(workers
                  ->Submit(
                      [released](Transaction& txn) {
                        released.wait();
                        return txn.Put("slow", "done");
                      },
                      [&](Status status) {
                        EXPECT_TRUE(status.ok()) << status.ToString();
                        completions_on_loop &= std::this_thread::get_id() == loop_thread;
                        ++completed;
                      })
                  .ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(workers
                    ->Submit([i](Transaction& txn) { return txn.Put("k" + std::to_string(i), "v"); },
                             [&](Status status) {
                               EXPECT_TRUE(status.ok()) << status.ToString();
                               completions_on_loop &= std::this_thread::get_id() == loop_thread;
                               ++completed;
                             })
                    .ok());
  }
  // The fast ones complete through the other worker while the slow one is still blocked.
  ASSERT_TRUE(loop_.RunUntil([&] { return completed == 10; }));
  release.set_value();
  ASSERT_TRUE(loop_.RunUntil([&] { return completed == 11; }));
  EXPECT_TRUE(completions_on_loop);
  std::unique_ptr<Transaction> txn = std::move(store_->Begin()).value();
  EXPECT_EQ(txn->Get("slow").value(), "done");
  EXPECT_EQ(txn->Scan("k", "l", 100).value().size(), 10u);
  txn->Rollback();
}

TEST_F(StoreWorkersTest, FullQueueIsResourceExhaustedAndQueuesNothing) {
  StoreWorkersOptions options;
  options.threads = 1;
  options.queue_max = 2;
  std::unique_ptr<StoreWorkers> workers =
      std::move(StoreWorkers::Create(*store_, loop_.poster(), options)).value();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> started;
  int completed = 0;
  auto count = [&](Status status) {
    EXPECT_TRUE(status.ok());
    ++completed;
  };
  ASSERT_TRUE(workers
                  ->Submit(
                      [&started, released](Transaction&) {
                        started.set_value();
                        released.wait();
                        return Status::Ok();
                      },
                      count)
                  .ok());
  started.get_future().wait();  // the worker holds the first job; the queue is empty
  ASSERT_TRUE(workers->Submit([](Transaction&) { return Status::Ok(); }, count).ok());
  ASSERT_TRUE(workers->Submit([](Transaction&) { return Status::Ok(); }, count).ok());
  const Status full = workers->Submit([](Transaction&) { return Status::Ok(); }, count);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_EQ(workers->queued(), 2u);
  release.set_value();
  ASSERT_TRUE(loop_.RunUntil([&] { return completed == 3; }));
  StoreWorkersOptions no_threads;
  no_threads.threads = 0;
  EXPECT_EQ(no_threads.Validate().code(), StatusCode::kInvalidArgument);
}

Task<Status> Claim(StoreWorkers& workers, std::string key, std::shared_ptr<bool> won) {
  // The body is a named local, not a temporary inside the co_await expression: GCC 12 destroys
  // such lambda temporaries twice.
  StoreWorkers::Body body = [key, won](Transaction& txn) -> Status {
    FL_ASSIGN_OR_RETURN(*won, txn.InsertIfAbsent(key, "owner"));
    return Status::Ok();
  };
  Status status = co_await workers.Run(std::move(body));
  co_return status;
}

TEST_F(StoreWorkersTest, CoroutineAwaitsTheTransactionAndADestroyedOneIsNotResumed) {
  std::unique_ptr<StoreWorkers> workers =
      std::move(StoreWorkers::Create(*store_, loop_.poster())).value();
  auto first_won = std::make_shared<bool>(false);
  auto handle = Claim(*workers, "idem-1", first_won).release();
  handle.resume();  // runs to the co_await, which suspends
  ASSERT_TRUE(loop_.RunUntil([&] { return handle.done(); }));
  EXPECT_TRUE(handle.promise().value->ok());
  EXPECT_TRUE(*first_won);
  handle.destroy();

  // A second claim of the same key loses; its coroutine is destroyed before the completion
  // arrives (a crashed node): the job finishes, nothing is resumed, nothing crashes.
  auto second_won = std::make_shared<bool>(true);
  auto doomed = Claim(*workers, "idem-1", second_won).release();
  doomed.resume();
  doomed.destroy();
  workers.reset();  // joins: the job ran, its completion is queued on the loop
  EXPECT_EQ(loop_.Drain(), 1);  // the completion runs and must not touch the destroyed frame
  EXPECT_FALSE(*second_won);
}

}  // namespace
}  // namespace faultline
