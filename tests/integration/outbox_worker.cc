// The relay process of the outbox end-to-end tests (outbox_e2e_test.cc): a Relay over the
// LocalStore outbox publishing to a broker, in a loop, until it is killed.
//
//   outbox_worker relay STORE_URI TABLE BROKER_URI TOKEN DIE_AFTER --parent=PID
//
// TOKEN is the relay's fencing token (each restart gets a higher one). DIE_AFTER > 0: on that
// batch, the process SIGKILLs itself right after Publish returned and before MarkPublished (S3).
// Prints "ready" once the store and broker are open. Errors from the relay go to stderr and are
// retried (a broker or store that is briefly busy); kFencedOut exits 3; misuse exits 2.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "faultline/adapters/open_store.h"
#include "faultline/outbox/open_broker.h"
#include "faultline/outbox/relay.h"

namespace faultline::outbox {
namespace {

int Fail(const Status& status) {
  std::fprintf(stderr, "outbox_worker: %s\n", status.ToString().c_str());
  return 2;
}

// One batch done by hand, dying between Publish and MarkPublished.
void DieAfterPublish(Relay& relay, Publisher& publisher) {
  while (true) {
    Result<std::vector<OutboxRecord>> records = relay.Poll(relay.options().batch_max);
    if (records.ok() && !records->empty()) {
      std::vector<Message> batch;
      for (const OutboxRecord& r : *records) batch.push_back(r.message);
      if (publisher.Publish(batch).ok()) raise(SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

int RunRelay(const std::vector<std::string>& args) {
  if (args.size() != 6 || args[0] != "relay") {
    std::fprintf(stderr, "usage: outbox_worker relay STORE_URI TABLE BROKER_URI TOKEN DIE_AFTER\n");
    return 2;
  }
  OpenStoreOptions store_options;
  store_options.table = args[2];
  Result<std::unique_ptr<LocalStore>> store = OpenStore(args[1], store_options);
  if (!store.ok()) return Fail(store.status());
  Result<std::unique_ptr<Broker>> broker = OpenBroker(args[3]);
  if (!broker.ok()) return Fail(broker.status());
  Result<std::unique_ptr<Publisher>> publisher = (*broker)->NewPublisher();
  if (!publisher.ok()) return Fail(publisher.status());
  const FencingToken token(std::strtoull(args[4].c_str(), nullptr, 10));
  const long die_after = std::atol(args[5].c_str());
  Result<std::unique_ptr<Relay>> relay =
      Relay::Create(**store, {}, RelayOptions{.batch_max = 64}, [token] { return token; });
  if (!relay.ok()) return Fail(relay.status());
  std::printf("ready\n");
  std::fflush(stdout);
  for (long batches = 0;;) {
    if (batches + 1 == die_after) DieAfterPublish(**relay, **publisher);
    Result<size_t> published = (*relay)->RunOnce(**publisher);
    if (!published.ok()) {
      std::fprintf(stderr, "outbox_worker: %s\n", published.status().ToString().c_str());
      if (published.status().code() == StatusCode::kFencedOut) return 3;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } else if (*published == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    } else {
      ++batches;
    }
  }
}

}  // namespace
}  // namespace faultline::outbox

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args.back().rfind("--parent=", 0) == 0) {
    const pid_t parent = static_cast<pid_t>(std::atol(args.back().c_str() + 9));
    args.pop_back();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) return 125;
  }
  return faultline::outbox::RunRelay(args);
}
