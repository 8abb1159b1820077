// A project outside the faultline tree that links only the installed faultline::check: it reads a
// history recorded elsewhere and checks it, the way a user of a real system would.
#include <cstdio>
#include <sstream>

#include "faultline/check/history_io.h"
#include "faultline/check/linearizability.h"

int main() {
  // A write of 1 completes, then a read returns the initial null: a stale read.
  std::istringstream in(
      "{\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"value\":1,\"time_ns\":10}\n"
      "{\"process\":1,\"type\":\"ok\",\"f\":\"write\",\"value\":1,\"time_ns\":20}\n"
      "{\"process\":2,\"type\":\"invoke\",\"f\":\"read\",\"value\":null,\"time_ns\":30}\n"
      "{\"process\":2,\"type\":\"ok\",\"f\":\"read\",\"value\":null,\"time_ns\":40}\n");
  faultline::Result<faultline::check::History> history = faultline::check::ParseHistoryJsonl(in);
  if (!history.ok()) return 1;
  const faultline::check::LinearizabilityResult r =
      faultline::check::Check(*history, faultline::check::Model::kRegister);
  std::printf("%s\n", faultline::check::VerdictName(r.verdict));
  return r.verdict == faultline::check::Verdict::kNotLinearizable ? 0 : 1;
}
