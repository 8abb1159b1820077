#include "faultline/runtime/loopback_transport.h"

#include <asio.hpp>
#include <set>
#include <string>

#include "faultline/core/options.h"

namespace faultline::runtime {
namespace {

constexpr uint8_t kOutboundBit = 1;
constexpr uint8_t kInboundBit = 2;
constexpr size_t kDatagramBytesMax = 65507;

uint8_t Bits(Direction dir) {
  switch (dir) {
    case Direction::kOutbound:
      return kOutboundBit;
    case Direction::kInbound:
      return kInboundBit;
    case Direction::kBoth:
      return kOutboundBit | kInboundBit;
  }
  return 0;
}

asio::ip::address_v4 Loopback() { return asio::ip::address_v4::loopback(); }

}  // namespace

struct LoopbackTransport::Impl {
  explicit Impl(asio::io_context& io) : socket(io) {}
  asio::ip::udp::socket socket;
  asio::ip::udp::endpoint source;
  std::vector<uint8_t> receive_buffer = std::vector<uint8_t>(kDatagramBytesMax + 1);
  std::vector<uint8_t> send_buffer;
  // Shared with the pending receive's handler: false once the transport is gone.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
};

Status LoopbackOptions::Validate() const {
  FL_CHECK_OPTION(recv_buffer_bytes > 0, "recv_buffer_bytes must be > 0");
  FL_CHECK_OPTION(send_buffer_bytes > 0, "send_buffer_bytes must be > 0");
  FL_CHECK_OPTION(payload_bytes_max + kFrameHeaderBytes <= kDatagramBytesMax,
                  "payload_bytes_max must be <= 65491 (a frame must fit one UDP datagram)");
  FL_CHECK_OPTION(receive_batch_max > 0, "receive_batch_max must be > 0");
  return Status::Ok();
}

LoopbackTransport::LoopbackTransport(std::vector<Peer> peers, LoopbackOptions options)
    : peers_(std::move(peers)), options_(options), rules_(new std::atomic<uint8_t>[peers_.size()]) {
  for (size_t i = 0; i < peers_.size(); ++i) rules_[i].store(0);
}

Result<std::unique_ptr<LoopbackTransport>> LoopbackTransport::Open(asio::io_context& io,
                                                                   NodeId self,
                                                                   std::vector<Peer> peers,
                                                                   LoopbackOptions options) {
  FL_RETURN_IF_ERROR(options.Validate());
  std::set<NodeId> ids;
  std::set<uint16_t> ports;
  const Peer* me = nullptr;
  for (const Peer& p : peers) {
    if (!ids.insert(p.id).second)
      return InvalidArgumentError("duplicate node id in the peer table");
    if (p.id == self) {
      me = &p;
    } else if (p.port == 0) {
      return InvalidArgumentError("every peer but self needs a nonzero port");
    }
    if (p.port != 0 && !ports.insert(p.port).second) {
      return InvalidArgumentError("duplicate port in the peer table");
    }
  }
  if (me == nullptr) return InvalidArgumentError("the peer table must contain self");
  const uint16_t bind_port = me->port;

  std::unique_ptr<LoopbackTransport> t(new LoopbackTransport(std::move(peers), options));
  t->impl_ = std::make_unique<Impl>(io);
  asio::ip::udp::socket& s = t->impl_->socket;
  asio::error_code ec;
  s.open(asio::ip::udp::v4(), ec);
  if (!ec)
    s.set_option(
        asio::socket_base::receive_buffer_size(static_cast<int>(options.recv_buffer_bytes)), ec);
  if (!ec)
    s.set_option(asio::socket_base::send_buffer_size(static_cast<int>(options.send_buffer_bytes)),
                 ec);
  if (!ec) s.bind(asio::ip::udp::endpoint(Loopback(), bind_port), ec);
  if (!ec) s.non_blocking(true, ec);
  if (ec) {
    return UnavailableError("cannot bind 127.0.0.1:" + std::to_string(bind_port) + ": " +
                            ec.message());
  }
  if (bind_port == 0) {
    for (Peer& p : t->peers_) {
      if (p.id == self) p.port = s.local_endpoint().port();
    }
  }
  t->StartReceive();
  return t;
}

LoopbackTransport::~LoopbackTransport() {
  if (impl_) {
    *impl_->alive = false;
    asio::error_code ec;
    impl_->socket.close(ec);
  }
}

int LoopbackTransport::PeerIndex(NodeId id) const {
  for (size_t i = 0; i < peers_.size(); ++i) {
    if (peers_[i].id == id) return static_cast<int>(i);
  }
  return -1;
}

int LoopbackTransport::PeerIndexByPort(uint16_t port) const {
  for (size_t i = 0; i < peers_.size(); ++i) {
    if (peers_[i].port == port) return static_cast<int>(i);
  }
  return -1;
}

uint16_t LoopbackTransport::port() const {
  asio::error_code ec;
  const auto endpoint = impl_->socket.local_endpoint(ec);
  return ec ? 0 : endpoint.port();
}

Status LoopbackTransport::Send(NodeId to, uint16_t type, uint16_t schema_version,
                               std::span<const uint8_t> payload) {
  const int i = PeerIndex(to);
  if (i < 0) return InvalidArgumentError("send to a node not in the peer table");
  if (payload.size() > options_.payload_bytes_max) {
    return InvalidArgumentError("payload exceeds the transport's payload_bytes_max");
  }
  if (rules_[i].load(std::memory_order_relaxed) & kOutboundBit) {
    counters_.dropped_by_rule.fetch_add(1, std::memory_order_relaxed);
    return Status::Ok();
  }
  std::vector<uint8_t>& buf = impl_->send_buffer;
  buf.clear();
  FrameLimits limits;
  limits.payload_bytes_max = options_.payload_bytes_max;
  FL_RETURN_IF_ERROR(EncodeFrame(type, schema_version, payload, &buf, limits));
  asio::error_code ec;
  impl_->socket.send_to(asio::buffer(buf),
                        asio::ip::udp::endpoint(Loopback(), peers_[static_cast<size_t>(i)].port), 0,
                        ec);
  if (!ec) {
    counters_.sent.fetch_add(1, std::memory_order_relaxed);
  } else if (ec == asio::error::would_block || ec == asio::error::no_buffer_space) {
    counters_.dropped_buffer_full.fetch_add(1, std::memory_order_relaxed);
  } else {
    counters_.send_errors.fetch_add(1, std::memory_order_relaxed);
  }
  return Status::Ok();
}

void LoopbackTransport::SetHandler(MessageHandler handler) { handler_ = std::move(handler); }

void LoopbackTransport::StartReceive() {
  Impl* impl = impl_.get();
  impl->socket.async_wait(
      asio::ip::udp::socket::wait_read, [this, alive = impl->alive](const asio::error_code& ec) {
        if (!*alive || ec == asio::error::operation_aborted) return;
        // Drain up to a batch of datagrams, then let other callbacks run.
        for (uint32_t n = 0; n < options_.receive_batch_max; ++n) {
          asio::error_code rec;
          const size_t bytes = impl_->socket.receive_from(asio::buffer(impl_->receive_buffer),
                                                          impl_->source, 0, rec);
          if (rec == asio::error::would_block) break;
          if (rec) continue;  // e.g. ECONNREFUSED from an earlier send
          OnDatagram(impl_->source.port(), impl_->source.address() == asio::ip::address(Loopback()),
                     bytes);
          if (!*alive) return;  // the handler destroyed us
        }
        StartReceive();
      });
}

void LoopbackTransport::OnDatagram(uint16_t source_port, bool source_is_loopback, size_t bytes) {
  const int i = source_is_loopback ? PeerIndexByPort(source_port) : -1;
  if (i < 0) {
    counters_.dropped_unknown_sender.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (rules_[i].load(std::memory_order_relaxed) & kInboundBit) {
    counters_.dropped_by_rule.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  FrameLimits limits;
  limits.payload_bytes_max = options_.payload_bytes_max;
  auto frame = DecodeFrame(std::span<const uint8_t>(impl_->receive_buffer.data(), bytes), limits);
  if (!frame.ok()) {
    counters_.dropped_corrupt.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  counters_.received.fetch_add(1, std::memory_order_relaxed);
  if (handler_) handler_(peers_[static_cast<size_t>(i)].id, frame.value());
}

Status LoopbackTransport::Block(NodeId peer, Direction dir) {
  const int i = PeerIndex(peer);
  if (i < 0) return InvalidArgumentError("Block: node not in the peer table");
  if (peers_[static_cast<size_t>(i)].never_blocked) return Status::Ok();
  rules_[i].fetch_or(Bits(dir), std::memory_order_relaxed);
  return Status::Ok();
}

Status LoopbackTransport::Unblock(NodeId peer) {
  const int i = PeerIndex(peer);
  if (i < 0) return InvalidArgumentError("Unblock: node not in the peer table");
  rules_[i].store(0, std::memory_order_relaxed);
  return Status::Ok();
}

void LoopbackTransport::HealAll() {
  for (size_t i = 0; i < peers_.size(); ++i) rules_[i].store(0, std::memory_order_relaxed);
}

bool LoopbackTransport::blocked(NodeId peer, Direction dir) const {
  const int i = PeerIndex(peer);
  if (i < 0) return false;
  const uint8_t bits = Bits(dir);
  return (rules_[i].load(std::memory_order_relaxed) & bits) == bits;
}

TransportStats LoopbackTransport::stats() const {
  TransportStats s;
  s.sent = counters_.sent.load(std::memory_order_relaxed);
  s.received = counters_.received.load(std::memory_order_relaxed);
  s.dropped_by_rule = counters_.dropped_by_rule.load(std::memory_order_relaxed);
  s.dropped_corrupt = counters_.dropped_corrupt.load(std::memory_order_relaxed);
  s.dropped_unknown_sender = counters_.dropped_unknown_sender.load(std::memory_order_relaxed);
  s.dropped_buffer_full = counters_.dropped_buffer_full.load(std::memory_order_relaxed);
  s.send_errors = counters_.send_errors.load(std::memory_order_relaxed);
  return s;
}

}  // namespace faultline::runtime
