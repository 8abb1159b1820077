// faultline check linearizable: reads history files (regular files only, never blocking on a
// FIFO), checks each, and says which limit produced an "unknown".
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <istream>
#include <streambuf>
#include <string>
#include <string_view>

#include "apps/faultline/commands.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/check/history_io.h"
#include "faultline/check/linearizability.h"

namespace faultline::app {
namespace {

// A read-only stream buffer over a file descriptor that records the first read error instead of
// throwing (std::ifstream on a directory throws from underflow).
class FdBuf : public std::streambuf {
 public:
  explicit FdBuf(int fd) : fd_(fd) {}
  int error() const { return error_; }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    if (error_ != 0) return traits_type::eof();
    ssize_t n;
    do {
      n = ::read(fd_, buf_, sizeof(buf_));
    } while (n < 0 && errno == EINTR);
    if (n < 0) error_ = errno;
    if (n <= 0) return traits_type::eof();
    setg(buf_, buf_, buf_ + n);
    return traits_type::to_int_type(*gptr());
  }

 private:
  int fd_;
  int error_ = 0;
  char buf_[1 << 16];
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string CannotRead(const std::string& path, const std::string& why) {
  return "cannot read '" + path + "': " + why;
}

// Opens `path` for reading. O_NONBLOCK: opening a FIFO never waits for a writer; it is then
// rejected as not a regular file.
int OpenRegularFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw UsageError(CannotRead(path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw UsageError(CannotRead(path, std::strerror(e)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    const char* what = S_ISDIR(st.st_mode)    ? std::strerror(EISDIR)
                       : S_ISFIFO(st.st_mode) ? "not a regular file (a FIFO)"
                       : S_ISCHR(st.st_mode)  ? "not a regular file (a character device)"
                       : S_ISSOCK(st.st_mode) ? "not a regular file (a socket)"
                                              : "not a regular file";
    throw UsageError(CannotRead(path, what));
  }
  // Regular files never block; reads are plain blocking reads from here on.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

// The 1-based line of the op at `index`: ParseHistoryJsonl numbers ops by their position among
// the lines that are not blank (only whitespace). 0 when the file cannot be read again.
uint64_t LineOfOp(const std::string& path, uint64_t index) {
  const int raw = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (raw < 0) return 0;
  Fd fd(raw);
  FdBuf buf(fd.get());
  std::istream in(&buf);
  std::string line;
  uint64_t line_no = 0;
  uint64_t op = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r\n\f\v") == std::string::npos) continue;
    if (op++ == index) return line_no;
  }
  return 0;
}

// The register model has no keys: its reads take no argument. A read invoked with a value (as in
// a kv history, {"key":k}) is an operation the model cannot express; checking it as a register
// read would silently drop the key and could report "not linearizable" for a correct history.
void ValidateForRegister(const sim::History& history, const std::string& path) {
  for (const sim::HistoryOp& op : history.ops()) {
    if (op.type != sim::OpType::kInvoke || op.f != "read" || op.value == "null") continue;
    const uint64_t line = LineOfOp(path, op.index);
    throw UsageError(path + ": " + (line > 0 ? "line " + std::to_string(line) + ": " : "") +
                     "a read with an argument (" + op.value +
                     ") cannot be expressed in the register model, whose reads take none "
                     "(a key-value history? use --model kv)");
  }
}

// Which limit turned the verdict into "unknown".
std::string UnknownReason(const check::LinearizabilityResult& r, const check::CheckOptions& o,
                          uint64_t deadline_s, uint64_t max_states) {
  if (r.stats.memo_peak >= o.memo_entries_max) {
    return "unknown: a key's search reached --max-states " + std::to_string(max_states) +
           " memoised states before a verdict (raise --max-states)";
  }
  if (r.stats.elapsed >= o.deadline) {
    return "unknown: the --deadline of " + std::to_string(deadline_s) +
           " s passed before a verdict (raise --deadline)";
  }
  return "unknown: a key's search reached the memo's byte limit (" +
         std::to_string(o.memo_bytes_max >> 20) + " MiB) before a verdict";
}

// Checks one history file; returns its exit code (0 linearizable, 1 not or unknown) or throws
// UsageError for a file that cannot be read or a malformed history.
int CheckFile(const std::string& path, check::Model model, const check::CheckOptions& options,
              uint64_t deadline_s, uint64_t max_states, const std::string& initial_value) {
  if (path.empty()) throw UsageError("history: empty file name");
  Fd fd(OpenRegularFile(path));
  FdBuf buf(fd.get());
  std::istream in(&buf);
  Result<sim::History> history = check::ParseHistoryJsonl(in);
  if (buf.error() != 0) throw UsageError(CannotRead(path, std::strerror(buf.error())));
  if (!history.ok()) throw UsageError(path + ": " + std::string(history.status().message()));
  if (model == check::Model::kRegister) ValidateForRegister(*history, path);

  const check::LinearizabilityResult r = check::Check(*history, model, options);
  if (!r.error.ok()) {
    // A bad --initial-value is the command line's fault, not the history's.
    const std::string_view why = r.error.message();
    if (why.rfind("initial_value_json", 0) == 0) {
      throw UsageError("--initial-value: not valid JSON: " + initial_value);
    }
    // "op N (process P): why" names the op by its index; say which line that is.
    uint64_t line = 0;
    if (why.rfind("op ", 0) == 0) {
      const uint64_t index = std::strtoull(std::string(why.substr(3, 20)).c_str(), nullptr, 10);
      line = LineOfOp(path, index);
    }
    throw UsageError(path + ": " + (line > 0 ? "line " + std::to_string(line) + ": " : "") +
                     std::string(why));
  }
  std::printf("%s: %s (%zu ops, %zu partitions, %llu states, %.3f s)\n", path.c_str(),
              check::VerdictName(r.verdict), r.stats.ops, r.stats.partitions,
              static_cast<unsigned long long>(r.stats.states_explored),
              r.stats.elapsed.seconds_f());
  if (r.explanation.has_value()) std::printf("%s\n", r.explanation->text.c_str());
  if (r.verdict == check::Verdict::kUnknown) {
    std::printf("%s\n", UnknownReason(r, options, deadline_s, max_states).c_str());
  }
  return r.verdict == check::Verdict::kLinearizable ? 0 : 1;
}

}  // namespace

int RunCheck(const CheckArgs& args) {
  check::Model model = check::Model::kRegister;
  if (args.model == "register") {
    model = check::Model::kRegister;
  } else if (args.model == "kv") {
    model = check::Model::kKv;
  } else {
    throw UsageError("unknown model '" + args.model + "' (register or kv)");
  }
  const uint64_t deadline_s = ParseUnsigned("--deadline", args.deadline_s, 1, 86400);
  const uint64_t max_states = ParseUnsigned("--max-states", args.max_states, 1, 1'000'000'000);
  const uint64_t effort = ParseUnsigned("--minimize-effort", args.minimize_effort, 0, 1'000'000);
  if (effort > 0 && !args.minimize) throw UsageError("--minimize-effort needs --minimize");
  if (args.history_paths.empty()) throw UsageError("history: no file given");

  check::CheckOptions options;
  options.deadline = Duration::Seconds(static_cast<int64_t>(deadline_s));
  options.memo_entries_max = static_cast<size_t>(max_states);
  options.clock = &SystemClock::Default();  // --deadline is wall-clock time, per file
  options.initial_value_json = args.initial_value;
  options.minimize = args.minimize;
  options.minimize_effort = effort;
  // --minimize is bounded by --deadline (and --minimize-effort), not by the library's 1 s.
  options.minimize_budget = options.deadline;
  int code = 0;
  for (const std::string& path : args.history_paths) {
    code = std::max(code, CheckFile(path, model, options, deadline_s, max_states,
                                    args.initial_value));
    std::fflush(stdout);  // a later file's error must not overtake this file's verdict
  }
  return code;
}

}  // namespace faultline::app
