// File: faultline/runtime/loopback_transport.h
//
// LoopbackTransport: the Transport seam over UDP on 127.0.0.1 — the production network of a node
// running as a real process, for clusters whose processes share one host (`faultline chaos`).
//
// - Addressing: every node binds its own UDP port on 127.0.0.1 (its entry in the peer table); a
//   message to NodeId n goes to 127.0.0.1:<n's port>. No other address is ever used or accepted:
//   the transport sends to loopback only, by construction.
// - Sender identity: a datagram's sender is the peer whose port is its source port. Datagrams from
//   unknown ports, or from any address but 127.0.0.1, are dropped and counted
//   (dropped_unknown_sender).
// - Framing: one datagram = one frame (EncodeFrame/DecodeFrame of env/frame.h, the same frame the
//   simulator carries). A datagram that fails DecodeFrame (truncated, bit-flipped, garbage) is
//   dropped and counted (dropped_corrupt); the handler never sees it.
// - Delivery: UDP on loopback loses datagrams when the receiver's socket buffer is full, and never
//   corrupts, duplicates or reorders them in practice; the Transport contract (unreliable,
//   unordered) allows all four, so node code written for the simulator stays correct.
// - Sends are non-blocking: a full socket send buffer drops the message and counts it
//   (dropped_buffer_full); Send never blocks the node's loop.
// - Drop rules, the in-transport partition: Block(peer, dir) drops our sends to `peer` (kOutbound),
//   datagrams from `peer` (kInbound) or both; Unblock(peer) and HealAll() lift them. A peer marked
//   never_blocked (the chaos harness's own id) ignores Block. Rules are checked on every send and
//   every receive, so they take effect at once.
//
// Threading: Send, SetHandler and the handler run on the owning io_context's thread (the node's
// executor). Block/Unblock/HealAll and stats() are thread-safe (atomics) and may be called from any
// thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "faultline/env/transport.h"

namespace asio {
class io_context;
}

namespace faultline::runtime {

// One node of the cluster as the transport sees it.
struct Peer {
  NodeId id;
  uint16_t port = 0;  // UDP port on 127.0.0.1; 0 only for self (bind an ephemeral port)
  bool never_blocked = false;
};

enum class Direction : uint8_t { kOutbound, kInbound, kBoth };

struct TransportStats {
  uint64_t sent = 0;                    // datagrams handed to the kernel
  uint64_t received = 0;                // frames delivered to the handler
  uint64_t dropped_by_rule = 0;         // Block rules, either direction
  uint64_t dropped_corrupt = 0;         // datagrams failing DecodeFrame
  uint64_t dropped_unknown_sender = 0;  // source not a peer's port on 127.0.0.1
  uint64_t dropped_buffer_full = 0;     // send buffer full (EAGAIN): dropped, never blocked
  uint64_t send_errors = 0;             // any other send failure (e.g. ECONNREFUSED)
};

struct LoopbackOptions {
  // Socket buffer sizes asked of the kernel (it caps them at net.core.{r,w}mem_max).
  uint32_t recv_buffer_bytes = 4u << 20;
  uint32_t send_buffer_bytes = 1u << 20;
  // Largest payload; a frame must fit one UDP datagram (65507 bytes on IPv4).
  uint32_t payload_bytes_max = 65507 - 16;
  // Datagrams drained per readiness event before yielding to other callbacks.
  uint32_t receive_batch_max = 64;
  Status Validate() const;
};

class LoopbackTransport final : public Transport {
 public:
  // Binds 127.0.0.1:<self's port> (self must be in `peers`; peer ids and ports unique; every port
  // but self's nonzero). kInvalidArgument for a bad table, kUnavailable when the bind fails (port
  // in use).
  static Result<std::unique_ptr<LoopbackTransport>> Open(asio::io_context& io, NodeId self,
                                                         std::vector<Peer> peers,
                                                         LoopbackOptions options = {});
  ~LoopbackTransport() override;
  LoopbackTransport(const LoopbackTransport&) = delete;
  LoopbackTransport& operator=(const LoopbackTransport&) = delete;

  // Transport. kInvalidArgument for an unknown destination or a payload above payload_bytes_max;
  // ok for everything else, including messages dropped by a rule or a full buffer.
  Status Send(NodeId to, uint16_t type, uint16_t schema_version,
              std::span<const uint8_t> payload) override;
  void SetHandler(MessageHandler handler) override;

  // Drop rules. kInvalidArgument for an unknown peer; ok (and no effect) for a never_blocked one.
  Status Block(NodeId peer, Direction dir);
  Status Unblock(NodeId peer);
  void HealAll();
  // True when a rule drops traffic from us to `peer` (kOutbound) / from `peer` to us (kInbound).
  bool blocked(NodeId peer, Direction dir) const;

  TransportStats stats() const;
  // The bound port (self's port, or the ephemeral one when self's entry said 0).
  uint16_t port() const;
  const std::vector<Peer>& peers() const { return peers_; }

 private:
  struct Impl;
  struct Counters {
    std::atomic<uint64_t> sent{0}, received{0}, dropped_by_rule{0}, dropped_corrupt{0},
        dropped_unknown_sender{0}, dropped_buffer_full{0}, send_errors{0};
  };
  LoopbackTransport(std::vector<Peer> peers, LoopbackOptions options);
  int PeerIndex(NodeId id) const;
  int PeerIndexByPort(uint16_t port) const;
  void StartReceive();
  void OnDatagram(uint16_t source_port, bool source_is_loopback, size_t bytes);

  std::vector<Peer> peers_;
  LoopbackOptions options_;
  // Per peer (same index as peers_): bit 0 = outbound blocked, bit 1 = inbound blocked.
  std::unique_ptr<std::atomic<uint8_t>[]> rules_;
  Counters counters_;
  MessageHandler handler_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace faultline::runtime
