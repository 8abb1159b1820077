// The infrastructure `faultline chaos split-brain` starts besides the node processes, and its
// faults: a 3-member etcd cluster (--lease etcd) and a PostgreSQL server (--store postgresql),
// each a direct child of the harness, reaped, and gone after the run (Ctrl-C and errors included).
//
// Faults (each logged with its TrueTime and counted):
//   etcd-leader-SIGSTOP   the raft leader (EtcdCluster::LeaderIndex) stopped for kEtcdPause, three
//                         times etcd's election timeout: the others elect a new leader meanwhile
//   etcd-SIGKILL          a member killed, restarted on its data directory kEtcdDown later
//   etcd-partition        a member cut off by nftables for kEtcdCut (below)
//   postgres-restart      the PostgreSQL server stopped (SIGKILL, or SIGINT: fast shutdown) and
//                         started again on the same data directory (crash recovery after SIGKILL)
//
// Partitions of an etcd member are nftables rules on plain loopback, in a table of this run's own,
// `inet faultline_<pid>` (created at Start, deleted by Heal and by the destructor; no other table
// is ever touched). Member i runs under its own uid U_i (EtcdClusterOptions::uids), and isolating
// it installs, in an output-hook chain:
//   oif lo tcp dport { peer_i, client_i } drop        nothing reaches member i's ports
//   oif lo tcp sport { peer_i, client_i } drop        nothing leaves them (established flows too)
//   oif lo meta skuid U_i tcp dport { peer_j, client_j : j != i } drop
//                                                     member i's own connections to the others
// Every rule names this run's ports, so runs sharing the machine (and uids) are not touched.
// nft missing or failing at Start is an error that names it (the run does not start). Tables of
// harnesses that were SIGKILLed (their pid gone) are deleted at the next run's start
// (RemoveStaleNftTables).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "apps/faultline/chaos_harness.h"
#include "faultline/core/random.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/lab/scenario.h"

namespace faultline::runtime {
class EtcdCluster;
class PgServer;
}  // namespace faultline::runtime

namespace faultline::app::chaos {

// etcd's raft timing in a chaos run (EtcdClusterOptions), and the fault lengths derived from it.
inline constexpr Duration kEtcdHeartbeat = Duration::Millis(50);
inline constexpr Duration kEtcdElectionTimeout = Duration::Millis(500);
inline constexpr Duration kEtcdPause = Duration::Millis(1500);
inline constexpr Duration kEtcdDown = Duration::Millis(1000);
inline constexpr Duration kEtcdCut = Duration::Millis(1500);
inline constexpr Duration kPostgresDown = Duration::Millis(300);

// The failover bound with --lease etcd: from the SIGKILL of the only acting leader to another node
// able to act, with the infrastructure healed (no etcd leader change meanwhile, which would extend
// every lease by the election timeout). The dead leader's key goes when etcd revokes its lease:
//   kTtl (2 s)                 etcd's TTL runs from the last keepalive the etcd leader processed,
//                              which was no later than the crash (ceil(2 s) = 2 s server-side)
// + kEtcdExpiryCheck (500 ms)  etcd's lessor looks for expired leases every 500 ms
// + 2 · kEtcdRttBound          the revoke's raft commit, and the DELETE event on the watch
//                              (LeaseService::WaitReleased) of the waiting candidates
// + 2 · kRetryMin (500 ms)     a candidate whose campaign gate still trusted the dead leader
//                              retries within [kRetryMin, 2·kRetryMin)
// + 2 · kEtcdRttBound          Acquire: lease grant, then the create-if-absent txn
// + kEtcdRttBound              the new leader's load of the store (PostgreSQL raises the mark)
// kEtcdRttBound = 50 ms bounds one request on a healthy loopback cluster (a raft commit with an
// fsync: ~2 ms measured, research/engines.md) and the 1 ms acting poll.
inline constexpr Duration kEtcdExpiryCheck = Duration::Millis(500);
inline constexpr Duration kEtcdRttBound = Duration::Millis(50);
inline constexpr Duration kEtcdFailoverBound =
    Duration::Seconds(2) + kEtcdExpiryCheck + kEtcdRttBound * 5 + Duration::Millis(500);

struct InfraOptions {
  bool etcd = false;
  bool postgresql = false;
  // The nft binary (FindNft); empty: looked up at Start.
  std::string nft;
};

// The nft the harness runs: FAULTLINE_NFT when set (it must be executable), else the first `nft`
// on PATH, as a shell finds it. kFailedPrecondition naming what is missing. `faultline chaos
// --lease etcd` asks this before it starts anything and exits 2 with the error on one line.
Result<std::string> FindNft();

// Deletes the tables a SIGKILLed harness left: those listed by `nft list tables` as exactly
// `table inet faultline_<pid>` (pid decimal, no leading zero) whose process is gone or a zombie.
// Every other table — other names, other families, a live pid (this one included) — is left
// alone; a pid re-used by an unrelated process keeps its table (conservative). Ok: one line per
// table removed, for the run's output. kFailedPrecondition when nft cannot list tables (not root).
// What else a SIGKILLed harness leaves: its node processes, etcd members and PostgreSQL server
// die with it (PR_SET_PDEATHSIG); its directories stay, $TMPDIR (default /tmp)/faultline-chaos-*
// (the run dir), fletcd-* (etcd) and flpg-* (PostgreSQL). They do not carry the harness's pid, so
// they are not removed automatically: delete them by hand when no run is going.
Result<std::vector<std::string>> RemoveStaleNftTables(const std::string& nft);

class Infra {
 public:
  explicit Infra(InfraOptions options);
  // Heals, deletes the nftables table, stops etcd and PostgreSQL and removes their directories.
  ~Infra();
  Infra(const Infra&) = delete;
  Infra& operator=(const Infra&) = delete;

  // Starts PostgreSQL and etcd and creates the nftables table (blocking, a few seconds at most).
  Status Start();
  // The node processes' extra arguments: --lease etcd --etcd URLS, --store-uri CONNINFO.
  std::vector<std::string> NodeArgs() const;
  // Lines for the run's header: what runs where, and how partitions are made.
  std::vector<std::string> Describe() const;
  void Attach(Harness* harness) { harness_ = harness; }

  // Draws and schedules the infrastructure faults in [from, to): one of each kind per cycle, in an
  // order drawn from `rng`, cycles repeated while they fit.
  void Schedule(Duration from, Duration to, Rng& rng);
  // Ends every infrastructure fault: resumes, restarts, deletes every rule, PostgreSQL up.
  void HealAll();

  // Asks EtcdCluster::LeaderIndex again every 100 ms, `tries_left` times, while no member reports
  // a leader (an election in progress).
  void PauseEtcdLeader(Duration length, int tries_left);
  void KillEtcdMember(size_t member, Duration down);
  void IsolateEtcdMember(size_t member, Duration length);
  void RestartPostgres(bool sigkill, Duration down);

 private:
  Status Nft(const std::string& command);
  void ClearRules();
  void Fail(const std::string& what, const Status& s);

  InfraOptions options_;
  Harness* harness_ = nullptr;
  std::unique_ptr<runtime::PgServer> pg_;
  std::unique_ptr<runtime::EtcdCluster> etcd_;
  std::string table_;  // "faultline_<pid>" once created
  bool rules_ = false;
};

// From the cluster nodes' {"k":"lease"} lines (MeteredLease, chaos_scenarios.cc): acquire latency
// of the granted Acquires (acquire_p50_ms, acquire_p99_ms, acquires_granted), every lease call
// (lease_ops, by op) and their rate over the run (lease_ops_per_s: the rate the run asked for, not
// the service's capacity).
void AddLeaseMetrics(const Harness& harness, uint32_t nodes, int64_t end_ns,
                     lab::RunResult* result);
// failover_mean_ms, failover_p50_ms, failover_p99_ms, failover_max_ms over every failover crash.
void AddFailoverMetrics(const std::vector<double>& ms, lab::RunResult* result);
double PercentileOf(std::vector<double> v, double p);

}  // namespace faultline::app::chaos
