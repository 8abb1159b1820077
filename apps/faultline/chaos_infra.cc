// The infrastructure of `faultline chaos split-brain` and its faults (chaos_infra.h).
#include "apps/faultline/chaos_infra.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "faultline/runtime/etcd_cluster.h"
#include "faultline/runtime/pg_server.h"

namespace faultline::app::chaos {
namespace {

constexpr size_t kEtcdMembers = 3;
constexpr Duration kGap = Duration::Millis(500);  // between two infrastructure faults
constexpr Duration kCycleMin = Duration::Seconds(3);  // one of each kind at most every 3 s
constexpr Duration kLeaderRetry = Duration::Millis(100);
constexpr int kLeaderTries = 20;  // 2 s of asking for the raft leader

// A uid per member no account uses: 40000 + 3·(pid mod 5000) + i. Rules also name this run's
// ports, so a uid shared with another run's member would not let one run's rules touch the other.
uint32_t MemberUid(size_t i) {
  return 40000 + 3 * static_cast<uint32_t>(::getpid() % 5000) + static_cast<uint32_t>(i);
}

// Runs argv (argv[0] an absolute path) with stdin from /dev/null and stdout+stderr captured
// (the first 64 KiB into *output when given); ok iff it exits 0. The error carries the first line
// of its output.
Status RunCommand(const std::vector<std::string>& argv, std::string* captured = nullptr) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return UnavailableError(std::string("pipe: ") + std::strerror(errno));
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return UnavailableError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::dup2(pipefd[1], STDOUT_FILENO);
    ::dup2(pipefd[1], STDERR_FILENO);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string output;
  char buf[512];
  ssize_t n = 0;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0 && output.size() < 65536) output.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (captured != nullptr) *captured = output;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  const std::string first = output.substr(0, output.find('\n'));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    return FailedPreconditionError(argv[0] + " could not be run (install nftables)");
  }
  return UnavailableError(argv[0] + " failed: " + (first.empty() ? "no output" : first));
}

// The pid in a table name this harness creates, "faultline_<pid>" (decimal, no leading zero);
// 0 for every other name.
pid_t PidOfTable(const std::string& name) {
  const std::string prefix = "faultline_";
  if (!name.starts_with(prefix) || name.size() == prefix.size() ||
      name.size() > prefix.size() + 9 || name[prefix.size()] == '0') {
    return 0;
  }
  pid_t pid = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return 0;
    pid = pid * 10 + (name[i] - '0');
  }
  return pid;
}

// Whether `pid` names a live process (a zombie is not: it runs nothing and holds no table).
bool ProcessAlive(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  std::string stat;
  const int fd = ::open(("/proc/" + std::to_string(pid) + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;  // exists per kill(); no /proc to tell a zombie apart
  char buf[256];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n > 0) stat.assign(buf, static_cast<size_t>(n));
  // "pid (comm) S ...": the state follows the last ')'.
  const size_t close_paren = stat.rfind(')');
  return close_paren == std::string::npos || close_paren + 2 >= stat.size() ||
         stat[close_paren + 2] != 'Z';
}

std::string PortSet(const std::vector<uint16_t>& ports) {
  std::string s = "{ ";
  for (size_t i = 0; i < ports.size(); ++i) s += (i ? ", " : "") + std::to_string(ports[i]);
  return s + " }";
}

std::string Ms(Duration d) { return std::to_string(d.nanos() / 1'000'000) + " ms"; }

}  // namespace

Result<std::string> FindNft() {
  if (const char* env = std::getenv("FAULTLINE_NFT"); env != nullptr && *env != '\0') {
    if (::access(env, X_OK) == 0) return std::string(env);
    return FailedPreconditionError(std::string("nftables is needed to partition etcd members: "
                                               "FAULTLINE_NFT=") + env + " is not an executable");
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = dirs.substr(start, end - start);
    if (!dir.empty() && dir[0] == '/') {
      const std::string candidate = dir + "/nft";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    start = end + 1;
  }
  return FailedPreconditionError(
      "nftables is needed to partition etcd members: no nft on PATH (apt-get install nftables, or "
      "set FAULTLINE_NFT)");
}

Result<std::vector<std::string>> RemoveStaleNftTables(const std::string& nft) {
  std::string listing;
  const Status listed = RunCommand({nft, "list tables"}, &listing);
  if (!listed.ok()) {
    return FailedPreconditionError("nftables: " + std::string(listed.message()) +
                                   " (partitions of etcd members need root)");
  }
  std::vector<std::string> removed;
  size_t start = 0;
  while (start < listing.size()) {
    size_t end = listing.find('\n', start);
    if (end == std::string::npos) end = listing.size();
    const std::string line = listing.substr(start, end - start);
    start = end + 1;
    const std::string family = "table inet ";
    if (!line.starts_with(family)) continue;
    const std::string name = line.substr(family.size());
    const pid_t pid = PidOfTable(name);
    if (pid <= 0 || pid == ::getpid() || ProcessAlive(pid)) continue;
    const Status deleted = RunCommand({nft, "delete table inet " + name});
    if (!deleted.ok()) {
      return UnavailableError("deleting the stale nftables table inet " + name + ": " +
                              std::string(deleted.message()));
    }
    removed.push_back("removed stale nftables table inet " + name + " (its harness, pid " +
                      std::to_string(pid) + ", is gone)");
  }
  return removed;
}

Infra::Infra(InfraOptions options) : options_(options) {}

Infra::~Infra() {
  if (!table_.empty()) Nft("delete table inet " + table_).IgnoreError();
  etcd_.reset();
  pg_.reset();
}

Status Infra::Nft(const std::string& command) {
  if (options_.nft.empty()) {
    Result<std::string> nft = FindNft();
    if (!nft.ok()) return nft.status();
    options_.nft = *nft;
  }
  return RunCommand({options_.nft, command});
}

Status Infra::Start() {
  if (options_.postgresql) {
    Result<std::unique_ptr<runtime::PgServer>> pg = runtime::PgServer::Start();
    if (!pg.ok()) return UnavailableError("starting PostgreSQL: " + pg.status().ToString());
    pg_ = std::move(pg).value();
  }
  if (!options_.etcd) return Status::Ok();
  // The table first: without nftables the partition fault cannot be applied, and the run says so
  // instead of starting without it.
  table_ = "faultline_" + std::to_string(::getpid());
  Status s = Nft("add table inet " + table_);
  if (!s.ok()) {
    table_.clear();
    return FailedPreconditionError("nftables is needed to partition etcd members: " + s.ToString());
  }
  s = Nft("add chain inet " + table_ + " out { type filter hook output priority 0 ; policy accept ; }");
  if (!s.ok()) return FailedPreconditionError("nftables: " + s.ToString());
  runtime::EtcdClusterOptions options;
  options.members = kEtcdMembers;
  options.heartbeat_interval = kEtcdHeartbeat;
  options.election_timeout = kEtcdElectionTimeout;
  if (::geteuid() == 0) {
    for (size_t i = 0; i < kEtcdMembers; ++i) options.uids.push_back(MemberUid(i));
  }
  Result<std::unique_ptr<runtime::EtcdCluster>> etcd = runtime::EtcdCluster::Start(options);
  if (!etcd.ok()) return UnavailableError("starting etcd: " + etcd.status().ToString());
  etcd_ = std::move(etcd).value();
  return Status::Ok();
}

std::vector<std::string> Infra::NodeArgs() const {
  std::vector<std::string> args;
  if (etcd_ != nullptr) {
    std::string urls;
    for (const std::string& e : etcd_->endpoints()) urls += (urls.empty() ? "" : ",") + e;
    args.insert(args.end(), {"--lease", "etcd", "--etcd", urls});
  }
  if (pg_ != nullptr) args.insert(args.end(), {"--store-uri", pg_->conninfo()});
  return args;
}

std::vector<std::string> Infra::Describe() const {
  std::vector<std::string> lines;
  if (etcd_ != nullptr) {
    std::string members;
    for (size_t i = 0; i < etcd_->size(); ++i) {
      members += (i ? ", " : "") + std::string("m") + std::to_string(i) + " pid " +
                 std::to_string(etcd_->pid(i)) + " uid " + std::to_string(etcd_->uid(i)) +
                 " client " + std::to_string(etcd_->client_port(i)) + " peer " +
                 std::to_string(etcd_->peer_port(i));
    }
    lines.push_back("lease service: etcd, " + std::to_string(etcd_->size()) +
                    " members on 127.0.0.1 (heartbeat " + Ms(kEtcdHeartbeat) +
                    ", election timeout " + Ms(kEtcdElectionTimeout) + ", " + etcd_->dir() +
                    "): " + members);
    lines.push_back("etcd partitions: nftables, table inet " + table_ +
                    " (drop rules by uid and port on oif lo; deleted at heal and exit)");
  }
  if (pg_ != nullptr) {
    lines.push_back("store: PostgreSQL (pid " + std::to_string(pg_->pid()) + ", " + pg_->dir() +
                    "), every write one serializable transaction; fenced designs check and raise "
                    "the token in it (FencedStore::CheckAndRaise)");
  }
  return lines;
}

void Infra::Fail(const std::string& what, const Status& s) {
  if (harness_ != nullptr) harness_->Log(what + " failed: " + s.ToString());
}

void Infra::PauseEtcdLeader(Duration length, int tries_left) {
  if (etcd_ == nullptr) return;
  Result<size_t> leader = etcd_->LeaderIndex();
  if (!leader.ok() && tries_left > 0) {
    // No leader while the members elect one (after a partition heals, say): ask again shortly.
    harness_->executor().ScheduleAfter(kLeaderRetry, [this, length, tries_left] {
      PauseEtcdLeader(length, tries_left - 1);
    });
    return;
  }
  if (!leader.ok()) return Fail("finding the etcd leader", leader.status());
  const size_t m = *leader;
  const Status s = etcd_->Pause(m);
  if (!s.ok()) return Fail("SIGSTOP etcd m" + std::to_string(m), s);
  harness_->Note("etcd-leader-SIGSTOP",
                 "SIGSTOP etcd leader m" + std::to_string(m) + " (pid " +
                     std::to_string(etcd_->pid(m)) + ") for " + Ms(length) +
                     " (election timeout " + Ms(kEtcdElectionTimeout) + ")");
  harness_->At(Duration::Nanos(harness_->Now()) + length, [this, m] {
    if (etcd_->paused(m) && etcd_->Resume(m).ok()) {
      harness_->Log("SIGCONT etcd m" + std::to_string(m));
    }
  });
}

void Infra::KillEtcdMember(size_t drawn, Duration down) {
  if (etcd_ == nullptr) return;
  // The drawn member, or the next one that runs unpaused (the leader's pause may still last).
  size_t m = drawn;
  for (size_t k = 0; k < etcd_->size(); ++k) {
    m = (drawn + k) % etcd_->size();
    if (etcd_->running(m) && !etcd_->paused(m)) break;
  }
  if (!etcd_->running(m) || etcd_->paused(m)) {
    return Fail("SIGKILL of an etcd member", UnavailableError("no member runs unpaused"));
  }
  const pid_t pid = etcd_->pid(m);
  const Status s = etcd_->Kill(m);
  if (!s.ok()) return Fail("SIGKILL etcd m" + std::to_string(m), s);
  harness_->Note("etcd-SIGKILL", "SIGKILL etcd m" + std::to_string(m) + " (pid " +
                                     std::to_string(pid) + "), restart in " + Ms(down));
  harness_->At(Duration::Nanos(harness_->Now()) + down, [this, m] {
    if (etcd_->running(m)) return;
    const Status restarted = etcd_->Restart(m);
    if (!restarted.ok()) return Fail("restart etcd m" + std::to_string(m), restarted);
    harness_->Log("restart etcd m" + std::to_string(m) + " (pid " + std::to_string(etcd_->pid(m)) +
                  ", same data directory, --initial-cluster-state existing)");
  });
}

void Infra::IsolateEtcdMember(size_t m, Duration length) {
  if (etcd_ == nullptr || table_.empty()) return;
  const std::vector<uint16_t> own = {etcd_->peer_port(m), etcd_->client_port(m)};
  std::vector<uint16_t> others;
  for (size_t j = 0; j < etcd_->size(); ++j) {
    if (j == m) continue;
    others.push_back(etcd_->peer_port(j));
    others.push_back(etcd_->client_port(j));
  }
  const std::string chain = "add rule inet " + table_ + " out oif lo ";
  Status s = Nft(chain + "tcp dport " + PortSet(own) + " drop");
  if (s.ok()) s = Nft(chain + "tcp sport " + PortSet(own) + " drop");
  if (s.ok() && etcd_->uid(m) != 0) {
    s = Nft(chain + "meta skuid " + std::to_string(etcd_->uid(m)) + " tcp dport " +
            PortSet(others) + " drop");
  }
  rules_ = true;
  if (!s.ok()) {
    ClearRules();
    return Fail("nftables partition of etcd m" + std::to_string(m), s);
  }
  harness_->Note("etcd-partition", "partition (nftables, table inet " + table_ + ") etcd m" +
                                       std::to_string(m) + " isolated (uid " +
                                       std::to_string(etcd_->uid(m)) + ", ports " +
                                       PortSet(own) + ") for " + Ms(length));
  harness_->At(Duration::Nanos(harness_->Now()) + length, [this] {
    if (!rules_) return;
    ClearRules();
    harness_->Log("heal the etcd partition (nftables rules flushed)");
  });
}

void Infra::ClearRules() {
  if (!rules_ || table_.empty()) return;
  Nft("flush chain inet " + table_ + " out").IgnoreError();
  rules_ = false;
}

void Infra::RestartPostgres(bool sigkill, Duration down) {
  if (pg_ == nullptr || !pg_->running()) return;
  const pid_t pid = pg_->pid();
  const Status s = pg_->Kill(sigkill ? SIGKILL : SIGINT);
  if (!s.ok()) return Fail("stopping PostgreSQL", s);
  harness_->Note("postgres-restart",
                 std::string(sigkill ? "SIGKILL" : "SIGINT (fast shutdown)") + " PostgreSQL (pid " +
                     std::to_string(pid) + "), restart on the same data directory in " + Ms(down));
  harness_->At(Duration::Nanos(harness_->Now()) + down, [this] {
    if (pg_->running()) return;
    const Status restarted = pg_->Restart();
    if (!restarted.ok()) return Fail("restarting PostgreSQL", restarted);
    harness_->Log("PostgreSQL restarted (pid " + std::to_string(pg_->pid()) + ")");
  });
}

void Infra::Schedule(Duration from, Duration to, Rng& rng) {
  enum Kind { kPause, kKill, kCut, kPg };
  std::vector<Kind> kinds;
  if (etcd_ != nullptr) kinds.insert(kinds.end(), {kPause, kKill, kCut});
  if (pg_ != nullptr) kinds.push_back(kPg);
  if (kinds.empty()) return;
  Duration at = from;
  while (true) {
    const Duration cycle_start = at;
    // One cycle: every kind once, in a drawn order (Fisher-Yates on the run's Rng).
    for (size_t i = kinds.size(); i > 1; --i) std::swap(kinds[i - 1], kinds[rng.Uniform(i)]);
    for (Kind kind : kinds) {
      const size_t member = static_cast<size_t>(rng.Uniform(kEtcdMembers));
      const bool sigkill = rng.Uniform(2) == 0;
      const Duration length = kind == kPause ? kEtcdPause
                              : kind == kKill ? kEtcdDown
                              : kind == kCut  ? kEtcdCut
                                              : kPostgresDown;
      if (at + length > to) return;
      switch (kind) {
        case kPause: harness_->At(at, [this] { PauseEtcdLeader(kEtcdPause, kLeaderTries); }); break;
        case kKill: harness_->At(at, [this, member] { KillEtcdMember(member, kEtcdDown); }); break;
        case kCut: harness_->At(at, [this, member] { IsolateEtcdMember(member, kEtcdCut); }); break;
        case kPg: harness_->At(at, [this, sigkill] { RestartPostgres(sigkill, kPostgresDown); }); break;
      }
      at = at + length + kGap;
    }
    at = std::max(at, cycle_start + kCycleMin);
  }
}

void Infra::HealAll() {
  if (etcd_ != nullptr) {
    ClearRules();
    for (size_t i = 0; i < etcd_->size(); ++i) {
      if (etcd_->paused(i)) etcd_->Resume(i).IgnoreError();
      if (!etcd_->running(i)) {
        const Status s = etcd_->Restart(i);
        if (!s.ok()) Fail("restart etcd m" + std::to_string(i), s);
      }
    }
  }
  if (pg_ != nullptr && !pg_->running()) {
    const Status s = pg_->Restart();
    if (!s.ok()) Fail("restarting PostgreSQL", s);
  }
  if (harness_ != nullptr) harness_->Log("heal the infrastructure: etcd members up, rules deleted, PostgreSQL up");
}

double PercentileOf(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void AddLeaseMetrics(const Harness& harness, uint32_t nodes, int64_t end_ns,
                     lab::RunResult* result) {
  std::vector<double> acquire_ms;
  std::map<std::string, int64_t> ops;
  int64_t total = 0;
  for (uint32_t n = 0; n < nodes; ++n) {
    for (const std::string& line : harness.Observations(n)) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || j.value("k", "") != "lease") continue;
      const std::string op = j.value("op", "");
      ++ops[op];
      ++total;
      if (op == "acquire" && j.value("ok", 0) != 0) {
        acquire_ms.push_back(static_cast<double>(j.value("ns", int64_t{0})) / 1e6);
      }
    }
  }
  if (total == 0) return;  // the naive design elects without a lease service
  result->metrics["acquires_granted"] = static_cast<double>(acquire_ms.size());
  if (!acquire_ms.empty()) {
    result->metrics["acquire_p50_ms"] = PercentileOf(acquire_ms, 0.5);
    result->metrics["acquire_p99_ms"] = PercentileOf(acquire_ms, 0.99);
  }
  result->metrics["lease_ops"] = static_cast<double>(total);
  for (const auto& [op, n] : ops) result->metrics["lease_ops_" + op] = static_cast<double>(n);
  if (end_ns > 0) {
    result->metrics["lease_ops_per_s"] = static_cast<double>(total) / (static_cast<double>(end_ns) / 1e9);
  }
}

void AddFailoverMetrics(const std::vector<double>& ms, lab::RunResult* result) {
  if (ms.empty()) return;
  double sum = 0;
  for (double x : ms) sum += x;
  result->metrics["failover_mean_ms"] = sum / static_cast<double>(ms.size());
  result->metrics["failover_p50_ms"] = PercentileOf(ms, 0.5);
  result->metrics["failover_p99_ms"] = PercentileOf(ms, 0.99);
  result->metrics["failover_max_ms"] = PercentileOf(ms, 1.0);
}

}  // namespace faultline::app::chaos
