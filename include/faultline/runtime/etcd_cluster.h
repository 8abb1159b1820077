// File: faultline/runtime/etcd_cluster.h
//
// EtcdCluster: a real etcd (1..7 members) on loopback, every member a direct child of this
// process — for tests, benchmarks and the chaos harness.
//
//   EtcdClusterOptions options;
//   options.members = 3;
//   FL_ASSIGN_OR_RETURN(std::unique_ptr<EtcdCluster> etcd, EtcdCluster::Start(options));
//   // etcd->endpoints() = {"http://127.0.0.1:P0", "http://127.0.0.1:P1", ...}
//   FL_ASSIGN_OR_RETURN(size_t leader, etcd->LeaderIndex());
//   etcd->Pause(leader);   // SIGSTOP: the others elect a new raft leader in ~1 s
//
// Start() makes a fresh directory under $TMPDIR (else /tmp), picks free loopback ports (a client
// and a peer port per member) and runs, for member i,
//   etcd --name m<i> --data-dir DIR/m<i> --listen-client-urls http://127.0.0.1:C_i
//        --advertise-client-urls http://127.0.0.1:C_i --listen-peer-urls http://127.0.0.1:P_i
//        --initial-advertise-peer-urls http://127.0.0.1:P_i --initial-cluster m0=...,m1=...
//        --initial-cluster-state new --initial-cluster-token <dir name>
//        --heartbeat-interval H --election-timeout E --logger zap --log-outputs DIR/m<i>.log
// each forked with PR_SET_PDEATHSIG(SIGKILL) (a crashed test takes its members with it) and, when
// options.uids[i] != 0, setresgid/setresuid to that uid in the child (its data directory is chowned
// first), so nftables `meta skuid` rules can partition single members on plain loopback. Start()
// returns once every member answers GET /health with "health":"true".
//
// Kill(i) is SIGKILL + reap (a crash); Restart(i) runs the member again on the same data
// directory and ports with --initial-cluster-state existing and waits until it is healthy;
// Pause(i)/Resume(i) are SIGSTOP/SIGCONT. The destructor resumes, kills and reaps every member and
// removes the directory (unless keep_dir).
//
// Errors are Status: a missing etcd binary (kFailedPrecondition naming the package), a member
// that exits or never turns healthy (kUnavailable with the tail of that member's log).
// Not thread-safe: one thread drives an EtcdCluster. Every call blocks (ports probing, health
// polling): call it from a test or harness thread, never from a node's event loop.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/status.h"
#include "faultline/core/time.h"

namespace faultline::runtime {

struct EtcdClusterLimits {
  static constexpr size_t kMembersMax = 7;
  static constexpr Duration kHeartbeatMin = Duration::Millis(10);
  static constexpr Duration kHeartbeatMax = Duration::Seconds(5);
  static constexpr Duration kStartTimeoutMax = Duration::Seconds(300);
};

struct EtcdClusterOptions {
  size_t members = 1;
  // The etcd binary; empty = $FAULTLINE_ETCD, else /usr/bin/etcd, /usr/local/bin/etcd.
  std::string binary;
  // Raft timing (etcd's --heartbeat-interval / --election-timeout, whole milliseconds).
  // election_timeout must be >= 5 x heartbeat_interval (etcd's own rule).
  Duration heartbeat_interval = Duration::Millis(50);
  Duration election_timeout = Duration::Millis(500);
  // How long Start()/Restart() wait for GET /health.
  Duration start_timeout = Duration::Seconds(30);
  // Empty, or one uid per member: member i runs as uids[i] (0 = as this process). Needs root.
  std::vector<uint32_t> uids;
  // Parent of the cluster's directory; empty = $TMPDIR, else /tmp.
  std::string base_dir;
  // Leave the directory (data + logs) behind, e.g. to read logs after a failure.
  bool keep_dir = false;

  // kInvalidArgument naming the bound that is violated.
  Status Validate() const;
};

class EtcdCluster {
 public:
  static Result<std::unique_ptr<EtcdCluster>> Start(EtcdClusterOptions options);
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  size_t size() const { return members_.size(); }
  // Client URLs, "http://127.0.0.1:P", one per member in member order (running or not).
  std::vector<std::string> endpoints() const;
  std::string endpoint(size_t i) const;
  uint16_t client_port(size_t i) const;
  uint16_t peer_port(size_t i) const;
  // The member's pid, or -1 after Kill(i) until Restart(i).
  pid_t pid(size_t i) const;
  // The uid member i runs as (0 = this process's).
  uint32_t uid(size_t i) const;
  bool running(size_t i) const { return pid(i) > 0; }
  bool paused(size_t i) const;
  const std::string& dir() const { return dir_; }
  std::string data_dir(size_t i) const;
  std::string log_path(size_t i) const;
  // The last `lines` lines of member i's log, joined with " | ".
  std::string LogTail(size_t i, size_t lines = 3) const;

  // SIGKILL and reap. kFailedPrecondition when not running.
  Status Kill(size_t i);
  // Runs member i again (same data dir, ports, uid; --initial-cluster-state existing) and waits
  // until it is healthy. kFailedPrecondition while it is still running.
  Status Restart(size_t i);
  // SIGSTOP / SIGCONT. kFailedPrecondition when not running.
  Status Pause(size_t i);
  Status Resume(size_t i);

  // The index of the raft leader: POST /v3/maintenance/status to every running, unpaused member;
  // the one whose header.member_id equals the reported leader. kUnavailable when no member
  // answers or none of the answering members is the leader they report.
  Result<size_t> LeaderIndex() const;
  // Polls GET /health on member i until "health":"true" or `timeout`.
  Status WaitHealthy(size_t i, Duration timeout) const;

 private:
  struct Member {
    std::string name;
    uint16_t client_port = 0;
    uint16_t peer_port = 0;
    uint32_t uid = 0;
    pid_t pid = -1;
    bool paused = false;
  };
  explicit EtcdCluster(EtcdClusterOptions options);
  Status Launch(size_t i, bool existing);
  std::string InitialCluster() const;

  EtcdClusterOptions options_;
  std::string dir_;
  std::vector<Member> members_;
};

// The etcd binary (see EtcdClusterOptions::binary), or kFailedPrecondition saying how to install it.
Result<std::string> FindEtcdBinary(const std::string& configured = "");

}  // namespace faultline::runtime
