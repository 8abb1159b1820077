#include "faultline/time/offset_monitor.h"

#include <algorithm>
#include <string>
#include <utility>

#include "faultline/core/bytes.h"

namespace faultline {

Status OffsetMonitorOptions::Validate() const {
  FL_CHECK_OPTION(max_offset > Duration::Zero() && !max_offset.is_infinite(),
                  "max_offset must be > 0 and finite");
  FL_CHECK_OPTION(measurement_ttl > Duration::Zero(), "measurement_ttl must be > 0");
  FL_CHECK_OPTION(peers_max > 0, "peers_max must be > 0");
  return Status::Ok();
}

Result<std::unique_ptr<OffsetMonitor>> OffsetMonitor::Create(Clock& clock,
                                                             OffsetMonitorOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  return std::unique_ptr<OffsetMonitor>(new OffsetMonitor(clock, options));
}

Result<OffsetMeasurement> OffsetMonitor::Estimate(MonoTime sent_mono, WallTime remote_wall,
                                                  MonoTime received_mono, WallTime received_wall) {
  if (received_mono < sent_mono) return InvalidArgumentError("reply received before it was sent");
  const Duration rtt = received_mono - sent_mono;
  const Duration half_floor = rtt / 2;
  const Duration uncertainty = rtt - half_floor;  // ceil(rtt / 2)
  const WallTime local_mid = received_wall - half_floor;
  OffsetMeasurement m{remote_wall - local_mid, uncertainty, received_mono};
  FL_ASSERT(m.uncertainty >= Duration::Zero());
  return m;
}

bool OffsetMonitor::IsWithin(const OffsetMeasurement& m, Duration tolerated) {
  FL_ASSERT(m.uncertainty >= Duration::Zero());
  const Duration abs_offset = m.offset < Duration::Zero() ? -m.offset : m.offset;
  // Ambiguous (abs_offset − uncertainty <= tolerated < abs_offset + uncertainty) counts as within.
  return abs_offset - m.uncertainty <= tolerated;
}

Status OffsetMonitor::Record(NodeId peer, const OffsetMeasurement& m) {
  if (m.uncertainty < Duration::Zero()) return InvalidArgumentError("negative uncertainty");
  if (m.measured_at > clock_.Now()) {
    return InvalidArgumentError("measurement taken in the future of the local monotonic clock");
  }
  if (observer_.attached() && !IsWithin(m, tolerated_offset())) {
    observer_.Emit(EventKind::kHlcOffsetAlarm, m.measured_at, static_cast<int64_t>(peer.value()),
                   0, m.offset);
  }
  auto it = peers_.find(peer);
  if (it == peers_.end()) {
    if (peers_.size() >= options_.peers_max) {
      return ResourceExhaustedError("offset monitor tracks peers_max peers already");
    }
    peers_.emplace(peer, m);
    return Status::Ok();
  }
  // Replies can arrive out of order: only a newer measurement replaces the stored one.
  if (m.measured_at >= it->second.measured_at) it->second = m;
  return Status::Ok();
}

void OffsetMonitor::DropStale(MonoTime now) {
  std::erase_if(peers_, [&](const auto& entry) {
    return now - entry.second.measured_at > options_.measurement_ttl;
  });
}

OffsetMonitor::Summary OffsetMonitor::Summarize() {
  DropStale(clock_.Now());
  Summary s;
  const Duration tolerated = tolerated_offset();
  for (const auto& [peer, m] : peers_) {
    ++s.fresh_peers;
    if (IsWithin(m, tolerated)) ++s.within_peers;
  }
  FL_ASSERT(s.within_peers <= s.fresh_peers);
  return s;
}

Status OffsetMonitor::Check() {
  const Summary s = Summarize();
  if (s.fresh_peers == 0) return Status::Ok();  // alone: nothing to compare against
  if (2 * static_cast<uint64_t>(s.within_peers) <= s.fresh_peers) {
    return FailedPreconditionError(
        "clock offset: this node is more than " + std::to_string(tolerated_offset().millis()) +
        "ms away from at least half of its peers (" + std::to_string(s.within_peers) + " of " +
        std::to_string(s.fresh_peers) + " within); fence until the clock is fixed");
  }
  return Status::Ok();
}

std::optional<OffsetMeasurement> OffsetMonitor::Latest(NodeId peer) {
  DropStale(clock_.Now());
  auto it = peers_.find(peer);
  if (it == peers_.end()) return std::nullopt;
  return it->second;
}

// ---- ClockPinger ----

void ServeClockPings(Rpc& rpc, Clock& clock) {
  Clock* c = &clock;
  rpc.Handle(kClockPingMethod, [c](NodeId, std::span<const uint8_t> request) -> Result<Bytes> {
    ByteReader r(request);
    uint8_t version = 0;
    FL_RETURN_IF_ERROR(r.U8(&version));
    if (version != kClockPingVersion) return UnimplementedError("unknown clock ping version");
    Bytes reply;
    ByteWriter w(&reply);
    w.U8(kClockPingVersion);
    w.I64(c->WallNow().nanos());
    return reply;
  });
}

Status ClockPingerOptions::Validate() const {
  FL_CHECK_OPTION(interval > Duration::Zero() && !interval.is_infinite(),
                  "interval must be > 0 and finite");
  FL_CHECK_OPTION(timeout > Duration::Zero() && timeout <= interval,
                  "timeout must be in (0, interval]");
  FL_CHECK_OPTION(peers_max > 0, "peers_max must be > 0");
  return Status::Ok();
}

Result<std::unique_ptr<ClockPinger>> ClockPinger::Create(Env& env, Rpc& rpc, OffsetMonitor& monitor,
                                                         std::vector<NodeId> peers,
                                                         ClockPingerOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  if (peers.size() > options.peers_max) return InvalidArgumentError("more than peers_max peers");
  std::sort(peers.begin(), peers.end());
  if (std::adjacent_find(peers.begin(), peers.end()) != peers.end()) {
    return InvalidArgumentError("duplicate peer");
  }
  if (std::find(peers.begin(), peers.end(), env.self()) != peers.end()) {
    return InvalidArgumentError("a node does not ping itself");
  }
  return std::unique_ptr<ClockPinger>(
      new ClockPinger(env, rpc, monitor, std::move(peers), options));
}

void ClockPinger::Start() {
  FL_ASSERT_MSG(!started_, "ClockPinger::Start called twice");
  started_ = true;
  ServeClockPings(rpc_, env_.clock());
  for (NodeId peer : peers_) loops_.Spawn(PingLoop(peer));
}

void ClockPinger::OnReply(NodeId peer, MonoTime sent, const Result<Bytes>& reply) {
  Clock& clock = env_.clock();
  const MonoTime received = clock.Now();
  const WallTime received_wall = clock.WallNow();
  if (!reply.ok()) {
    ++pings_failed_;
    return;
  }
  ByteReader r(*reply);
  uint8_t version = 0;
  int64_t remote_ns = 0;
  if (!r.U8(&version).ok() || version != kClockPingVersion || !r.I64(&remote_ns).ok() ||
      !r.empty()) {
    ++pings_failed_;  // malformed or newer reply: no measurement
    return;
  }
  Result<OffsetMeasurement> m =
      OffsetMonitor::Estimate(sent, WallTime::FromNanos(remote_ns), received, received_wall);
  FL_ASSERT(m.ok());  // monotonic time never goes back
  if (monitor_.Record(peer, *m).ok()) {
    ++pings_ok_;
  } else {
    ++pings_failed_;
  }
}

Task<void> ClockPinger::PingLoop(NodeId peer) {
  Clock& clock = env_.clock();
  const uint8_t request[1] = {kClockPingVersion};
  for (;;) {  // runs until Stop() or the node's crash destroys the frame
    const MonoTime sent = clock.Now();
    Result<Bytes> reply = co_await rpc_.Call(peer, kClockPingMethod, request, options_.timeout);
    OnReply(peer, sent, reply);
    const Duration spent = clock.Now() - sent;
    const Duration rest = std::max(options_.interval - spent, Duration::Zero());
    Status slept = co_await Sleep(env_.executor(), rest);
    if (!slept.ok()) co_return;
  }
}

}  // namespace faultline
