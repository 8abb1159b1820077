// idempotency_worker: one process of the multi-process idempotency tests. It opens its own store
// connection (never inherited across fork), runs IdempotencyKeys on the real wall clock and talks
// to the test over stdin/stdout, one line per step.
//
//   idempotency_worker URI TABLE race KEY
//       prints "ready", waits for end of file on stdin (the test closes every worker's stdin at
//       once), Acquires KEY (60 s lease) and prints "<claim state> <attempt>".
//   idempotency_worker URI TABLE hold KEY LEASE_MS
//       Acquires KEY for LEASE_MS and prints "<claim state> <attempt>"; then, for every stdin line
//       "complete RESPONSE", Completes with the attempt it got and prints the status code name
//       ("OK", "FENCED_OUT", ...). Exits at end of file.
//   idempotency_worker URI TABLE complete KEY ATTEMPT RESPONSE
//       Completes KEY as ATTEMPT and prints the status code name.
// Errors from the store print "error <CODE> <message>" and exit 3; misuse exits 2. A trailing
// "--parent=PID" makes the worker die with that parent (PR_SET_PDEATHSIG).
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "faultline/adapters/open_store.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/idempotency/idempotency_keys.h"

namespace {

using faultline::Duration;
using faultline::Status;
using faultline::idempotency::ClaimStateName;
using faultline::idempotency::FingerprintOf;
using faultline::idempotency::IdempotencyKeys;

constexpr std::string_view kScope = "worker";

int Fail(const Status& status) {
  std::printf("error %s %s\n", std::string(faultline::StatusCodeName(status.code())).c_str(),
              std::string(status.message()).c_str());
  std::fflush(stdout);
  return 3;
}

void Print(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

std::string CodeName(const Status& status) {
  return std::string(faultline::StatusCodeName(status.code()));
}

int Run(std::vector<std::string> args) {
  if (args.size() < 4) return 2;
  faultline::OpenStoreOptions open_options;
  open_options.table = args[1];
  open_options.connections_max = 2;
  auto store = faultline::OpenStore(args[0], open_options);
  if (!store.ok()) return Fail(store.status());
  auto keys = IdempotencyKeys::Create(**store, faultline::SystemClock::Default());
  if (!keys.ok()) return Fail(keys.status());
  const std::string& command = args[2];
  const std::string& key = args[3];
  const auto fp = FingerprintOf("POST /worker");
  if (command == "race" && args.size() == 4) {
    Print("ready");
    char c;
    while (read(0, &c, 1) > 0) {
    }
    auto claim = (*keys)->Acquire(kScope, key, fp, Duration::Seconds(60));
    if (!claim.ok()) return Fail(claim.status());
    Print(std::string(ClaimStateName(claim->state)) + " " + std::to_string(claim->attempt));
    return 0;
  }
  if (command == "hold" && args.size() == 5) {
    auto claim = (*keys)->Acquire(kScope, key, fp, Duration::Millis(std::atoll(args[4].c_str())));
    if (!claim.ok()) return Fail(claim.status());
    Print(std::string(ClaimStateName(claim->state)) + " " + std::to_string(claim->attempt));
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.rfind("complete ", 0) != 0) return 2;
      Print(CodeName((*keys)->Complete(kScope, key, claim->attempt, line.substr(9))));
    }
    return 0;
  }
  if (command == "complete" && args.size() == 6) {
    Print(CodeName((*keys)->Complete(kScope, key, std::strtoull(args[4].c_str(), nullptr, 10),
                                     args[5])));
    return 0;
  }
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args.back().rfind("--parent=", 0) == 0) {
    const pid_t parent = static_cast<pid_t>(std::atol(args.back().c_str() + 9));
    args.pop_back();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) return 125;
  }
  return Run(std::move(args));
}
