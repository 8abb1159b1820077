// File: faultline/time/offset_monitor.h
//
// Clock-offset monitoring with self-fencing, after CockroachDB's RemoteClockMonitor
// (pkg/rpc/clock_offset.go). Every clock-dependent guarantee (HLC max-offset checks, uncertainty
// intervals, leases read on the wall clock) assumes the operator's promise that no two clocks are
// more than max_offset apart. A node cannot see its own clock is wrong, but it can see that most
// of its peers disagree with it, and then it must stop serving (fence itself) instead of serving
// stale reads.
//
// Measurement (NTP-style, one ping): the node sends at monotonic time m0, the peer replies with
// its wall clock tr, the reply arrives at monotonic m1 and local wall t1. With RTT = m1 − m0
// (monotonic, so a wall step during the exchange cannot make it negative or huge),
//     offset      = tr − (t1 − RTT/2)      (= tr − (t0 + t1)/2 when the wall clock did not step)
//     uncertainty = ceil(RTT / 2)
// The local wall midpoint is taken from the receive-time wall reading: if the wall clock stepped
// during the exchange, the estimate describes the clock as it is now, which is the one the node
// keeps using. Positive offset: the peer is ahead.
//
// Health (CockroachDB semantics). Only the latest measurement per peer counts, and only while
// fresh (measured within measurement_ttl on the local monotonic clock); stale ones are dropped.
// A peer is "within" when |offset| − uncertainty <= 0.8 · max_offset: a measurement whose
// uncertainty straddles the threshold is ambiguous and counts as within (benefit of the doubt, as
// CockroachDB does; a slow network therefore weakens the check rather than fencing healthy nodes).
// Check() fails with kFailedPrecondition when AT MOST HALF of the fresh peers are within
// (2·within <= fresh): with 4 peers, 2 within already fences. With no fresh peers it is ok: a node
// alone cannot tell, and fencing every node of a cluster that just booted would be worse.
// Consequence worth knowing: in a 3-node cluster with one bad clock, each good node sees 1 of 2
// peers within and fences too; the check needs >= 5 nodes to single out one bad clock.
//
// ClockPinger is the message-based driver: it pings each peer every `interval` over Rpc (the reply
// carries the peer's wall clock) and feeds an OffsetMonitor. It runs the same under the simulator
// and in production.
//
// Thread safety: OffsetMonitor and ClockPinger are single-threaded, used on their node's executor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "faultline/core/ids.h"
#include "faultline/core/observer.h"
#include "faultline/core/options.h"
#include "faultline/core/status.h"
#include "faultline/core/time.h"
#include "faultline/env/clock.h"
#include "faultline/env/env.h"
#include "faultline/env/rpc.h"
#include "faultline/env/task.h"

namespace faultline {

struct OffsetMeasurement {
  Duration offset;       // peer wall − local wall; positive: the peer is ahead
  Duration uncertainty;  // >= 0; the true offset lies in offset ± uncertainty
  MonoTime measured_at;  // local monotonic time when the reply arrived
};

struct OffsetMonitorOptions {
  // The operator's promise: the largest offset between any two clocks. A peer counts as within
  // when its offset is at most 0.8 of it (CockroachDB's toleratedOffsetMultiplier). > 0.
  Duration max_offset = Duration::Millis(500);
  // A measurement older than this (local monotonic time) no longer counts. Several ping intervals,
  // so one lost ping does not make a peer vanish. > 0.
  Duration measurement_ttl = Duration::Seconds(10);
  // Distinct peers tracked. > 0.
  uint32_t peers_max = 1024;
  Status Validate() const;
};

class OffsetMonitor {
 public:
  struct Summary {
    uint32_t fresh_peers = 0;
    uint32_t within_peers = 0;  // fresh peers within 0.8·max_offset (ambiguous counts as within)
  };

  // `clock` must outlive the monitor.
  static Result<std::unique_ptr<OffsetMonitor>> Create(Clock& clock,
                                                       OffsetMonitorOptions options = {});
  OffsetMonitor(const OffsetMonitor&) = delete;
  OffsetMonitor& operator=(const OffsetMonitor&) = delete;

  // The measurement from one ping exchange (see the file comment). kInvalidArgument when
  // received_mono < sent_mono.
  static Result<OffsetMeasurement> Estimate(MonoTime sent_mono, WallTime remote_wall,
                                            MonoTime received_mono, WallTime received_wall);
  // True when the peer is within `tolerated`: |offset| − uncertainty <= tolerated.
  static bool IsWithin(const OffsetMeasurement& m, Duration tolerated);

  // Keeps `m` as the peer's latest measurement unless a newer one is stored (then ignored, ok).
  // kInvalidArgument: negative uncertainty, or measured_at in the future of the local clock.
  // kResourceExhausted: a new peer beyond peers_max.
  Status Record(NodeId peer, const OffsetMeasurement& m);
  // Drops the peer's measurement (a peer removed from the cluster).
  void Forget(NodeId peer) { peers_.erase(peer); }

  // Ok, or kFailedPrecondition "clock offset ..." when at most half of the fresh peers are within.
  // Drops stale measurements.
  Status Check();
  bool Healthy() { return Check().ok(); }
  Summary Summarize();
  // The peer's latest measurement while fresh.
  std::optional<OffsetMeasurement> Latest(NodeId peer);

  Duration tolerated_offset() const { return options_.max_offset * 4 / 5; }
  const OffsetMonitorOptions& options() const { return options_; }
  // Reports kHlcOffsetAlarm (a = peer, d = the offset, at = measured_at) for every recorded
  // measurement that is not within tolerated_offset().
  ObserverSlot& observe() { return observer_; }

 private:
  OffsetMonitor(Clock& clock, OffsetMonitorOptions options) : clock_(clock), options_(options) {}
  void DropStale(MonoTime now);

  Clock& clock_;
  const OffsetMonitorOptions options_;
  std::map<NodeId, OffsetMeasurement> peers_;  // ordered: deterministic iteration
  ObserverSlot observer_;
};

// ---- ClockPinger ----

// Rpc method of the clock ping. Request: u8 version. Reply: u8 version | i64 wall nanoseconds.
inline constexpr uint16_t kClockPingMethod = 0x0C10;
inline constexpr uint8_t kClockPingVersion = 1;

// Makes `rpc` answer clock pings with `clock`'s wall time. Both must outlive the handler's use.
void ServeClockPings(Rpc& rpc, Clock& clock);

struct ClockPingerOptions {
  // Time between the starts of two pings to one peer. > 0.
  Duration interval = Duration::Seconds(1);
  // A ping not answered within this is dropped (no measurement). In (0, interval].
  Duration timeout = Duration::Millis(500);
  // Peers pinged; at most this many.
  uint32_t peers_max = 1024;
  Status Validate() const;
};

class ClockPinger {
 public:
  // `env`, `rpc` and `monitor` must outlive the pinger. `peers` must not contain env.self().
  static Result<std::unique_ptr<ClockPinger>> Create(Env& env, Rpc& rpc, OffsetMonitor& monitor,
                                                     std::vector<NodeId> peers,
                                                     ClockPingerOptions options = {});
  ClockPinger(const ClockPinger&) = delete;
  ClockPinger& operator=(const ClockPinger&) = delete;
  ~ClockPinger() { Stop(); }

  // Serves pings on `rpc` (ServeClockPings) and starts one ping loop per peer; the first ping of
  // each goes out at once. Call once.
  void Start();
  // Stops every loop (their in-flight calls are abandoned). Idempotent.
  void Stop() { loops_.DestroyAll(); }

  uint64_t pings_ok() const { return pings_ok_; }
  uint64_t pings_failed() const { return pings_failed_; }

 private:
  ClockPinger(Env& env, Rpc& rpc, OffsetMonitor& monitor, std::vector<NodeId> peers,
              ClockPingerOptions options)
      : env_(env), rpc_(rpc), monitor_(monitor), peers_(std::move(peers)), options_(options) {}
  Task<void> PingLoop(NodeId peer);
  void OnReply(NodeId peer, MonoTime sent, const Result<Bytes>& reply);

  Env& env_;
  Rpc& rpc_;
  OffsetMonitor& monitor_;
  const std::vector<NodeId> peers_;
  const ClockPingerOptions options_;
  bool started_ = false;
  uint64_t pings_ok_ = 0;
  uint64_t pings_failed_ = 0;
  TaskSet loops_;  // last: destroyed first, while everything its frames use is alive
};

}  // namespace faultline
