// The mover process of tests/integration/reshard_real_test.cc, so a test can SIGKILL it at any
// point of a live move and resume the move in a new process.
//
//   reshard_worker DIR_URI DIR_TABLE A_URI A_TABLE B_URI B_TABLE NAME (start SPLIT | resume)
//                  BATCH [PAUSE_AT] --parent=PID
//
// start: Reshard::Start of the range on shard 1 from SPLIT upward to shard 2; resume: Resume NAME.
// Then Steps until switched, printing "phase <name>" after every step (flushed). On reaching phase
// PAUSE_AT it prints "paused <name>" and waits for a line on stdin before going on (the test kills
// it there). A step that fails kAborted (lost a serialization race to the writers) is called
// again, up to 50 times in a row. Prints "switched <fence_seq>" at the end, or "error <status>"
// (exit 1).
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "faultline/adapters/open_store.h"
#include "faultline/shard/reshard.h"

using namespace faultline;
using namespace faultline::shard;

namespace {

int Fail(const Status& s) {
  std::printf("error %s\n", s.ToString().c_str());
  std::fflush(stdout);
  return 1;
}

int Run(const std::vector<std::string>& a) {
  if (a.size() < 10) return Fail(InvalidArgumentError("usage: see reshard_worker.cc"));
  auto open = [](const std::string& uri, const std::string& table) {
    OpenStoreOptions options;
    options.table = table;
    options.connections_max = 2;
    return OpenStore(uri, options);
  };
  auto dir = open(a[0], a[1]);
  auto sa = open(a[2], a[3]);
  auto sb = open(a[4], a[5]);
  if (!dir.ok() || !sa.ok() || !sb.ok()) return Fail(UnavailableError("cannot open the stores"));
  ShardStore shard1(**sa), shard2(**sb);
  ShardResolver resolver = [&](ShardId id) -> Result<ShardStore*> {
    if (id == ShardId(1)) return &shard1;
    if (id == ShardId(2)) return &shard2;
    return NotFoundError("no shard");
  };
  ReshardOptions options;
  options.copy_batch_rows = static_cast<uint32_t>(std::atoi(a[9].c_str()));
  options.verify_batch = options.copy_batch_rows;
  options.log_batch = options.copy_batch_rows;
  const std::string pause_at = a.size() > 10 ? a[10] : "";
  Result<std::unique_ptr<Reshard>> mover =
      a[7] == "start"
          ? Reshard::Start(**dir, resolver, {a[6], RangeId(1), a[8], ShardId(2)}, options)
          : Reshard::Resume(**dir, resolver, a[6], options);
  if (!mover.ok()) return Fail(mover.status());
  bool paused = false;
  int conflicts = 0;  // consecutive kAborted steps
  while ((*mover)->phase() != ReshardPhase::kSwitched) {
    const std::string name(ReshardPhaseName((*mover)->phase()));
    if (!paused && name == pause_at) {
      paused = true;
      std::printf("paused %s\n", name.c_str());
      std::fflush(stdout);
      std::string line;
      std::getline(std::cin, line);
    }
    Result<ReshardPhase> p = (*mover)->Step();
    // kAborted: the step's transaction lost to the concurrent writers past the store's own
    // retries (a PostgreSQL serialization failure); Step's contract is "call again".
    if (!p.ok() && p.status().code() == StatusCode::kAborted && ++conflicts <= 50) continue;
    if (!p.ok()) return Fail(p.status());
    conflicts = 0;
    std::printf("phase %s\n", std::string(ReshardPhaseName(*p)).c_str());
    std::fflush(stdout);
  }
  std::printf("switched %llu\n", static_cast<unsigned long long>((*mover)->state().fence_seq));
  std::fflush(stdout);
  return 0;
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
  return Run(args);
}
