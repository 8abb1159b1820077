#include "faultline/sim/network.h"

#include "faultline/core/buggify.h"
#include "faultline/core/options.h"

namespace faultline::sim {

Status LinkOptions::Validate() const {
  FL_CHECK_OPTION(latency_min >= Duration::Zero(), "latency_min must be >= 0");
  FL_CHECK_OPTION(latency_mean_extra >= Duration::Zero(), "latency_mean_extra must be >= 0");
  FL_CHECK_OPTION(loss.valid(), "loss must be a ratio in [0, 1]");
  FL_CHECK_OPTION(duplicate.valid(), "duplicate must be a ratio in [0, 1]");
  FL_CHECK_OPTION(reorder.valid(), "reorder must be a ratio in [0, 1]");
  FL_CHECK_OPTION(corrupt.valid(), "corrupt must be a ratio in [0, 1]");
  return Status::Ok();
}

SimNetwork::SimNetwork(uint32_t node_count, Scheduler* scheduler, Rng* rng, LinkOptions defaults)
    : n_(node_count), scheduler_(scheduler), rng_(rng), links_(size_t{node_count} * node_count) {
  FL_ASSERT(node_count > 0);
  FL_ASSERT(scheduler != nullptr && rng != nullptr);
  FL_ASSERT(defaults.Validate().ok());
  for (auto& l : links_) l.options = defaults;
  messages_.reserve(256);
}

uint32_t SimNetwork::AllocMessage() {
  if (!free_messages_.empty()) {
    const uint32_t i = free_messages_.back();
    free_messages_.pop_back();
    return i;
  }
  messages_.emplace_back();
  return static_cast<uint32_t>(messages_.size() - 1);
}

Status SimNetwork::Send(uint32_t from, uint32_t to, uint16_t type, uint16_t schema_version,
                        std::span<const uint8_t> payload) {
  if (from >= n_ || to >= n_) return InvalidArgumentError("unknown node id");
  if (payload.size() > limits_.payload_bytes_max) {
    return InvalidArgumentError("payload exceeds frame limit");
  }
  ++stats_.sent;
  LinkState& link = Link(from, to);
  if (from != to && link.blocked) {
    ++stats_.dropped_partition;
    return Status::Ok();
  }
  if (from != to && rng_->Chance(link.options.loss)) {
    ++stats_.dropped_loss;
    return Status::Ok();
  }
  const uint32_t index = AllocMessage();
  Message& m = messages_[index];
  m.from = from;
  m.to = to;
  m.frame.clear();  // keeps capacity: steady state allocates nothing
  FL_ASSERT(EncodeFrame(type, schema_version, payload, &m.frame, limits_).ok());
  if (from != to && rng_->Chance(link.options.corrupt)) {
    const uint64_t bit = rng_->Uniform(m.frame.size() * 8);
    m.frame[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    ++stats_.corrupted;
  }
  if (from != to && rng_->Chance(link.options.duplicate)) {
    const uint32_t copy = AllocMessage();
    messages_[copy].from = from;
    messages_[copy].to = to;
    messages_[copy].frame = messages_[index].frame;
    ++stats_.duplicated;
    Dispatch(copy, link, true);
  }
  Dispatch(index, link, from != to);
  return Status::Ok();
}

void SimNetwork::Dispatch(uint32_t index, LinkState& link, bool allow_faults) {
  if (allow_faults && link.held) {
    link.held_messages.push_back(index);
    return;
  }
  const SimTime now = scheduler_->now();
  Duration latency = link.options.latency_min;
  if (allow_faults) latency += rng_->Exponential(link.options.latency_mean_extra);
  SimTime at = now + latency;
  if (allow_faults && link.clogged_until > now) at = link.clogged_until + latency;
  const bool may_overtake = allow_faults && rng_->Chance(link.options.reorder);
  // BUGGIFY: a delivery stalls. On a link that may reorder, later messages overtake it (a
  // reordered completion); on a FIFO link they queue behind it.
  bool stalled = false;
  if (allow_faults && FL_BUGGIFY_WITH_PERCENT("net.delivery_stall", 2)) {
    at += BuggifyRandom().Range(Duration::Millis(1), Duration::Millis(200));
    stalled = link.options.reorder.numerator > 0;
  }
  // Strictly after the previous delivery: events due at the same instant run in a seed-random
  // order, so an equal time would let this message overtake the previous one.
  if (!may_overtake && at <= link.last_delivery) at = link.last_delivery + Duration::Nanos(1);
  if (!stalled && at > link.last_delivery) link.last_delivery = at;
  ScheduleDelivery(index, at);
}

void SimNetwork::ScheduleDelivery(uint32_t index, SimTime at) {
  const uint32_t to = messages_[index].to;
  scheduler_->At(at, EventOwner{to, EventOwner::kAnyIncarnation}, [this, index] { Deliver(index); });
}

void SimNetwork::Deliver(uint32_t index) {
  Message& m = messages_[index];
  Result<FrameView> frame = DecodeFrame(m.frame, limits_);
  if (!frame.ok()) {
    ++stats_.rejected;
  } else {
    ++stats_.delivered;
    if (receiver_) receiver_(m.from, m.to, *frame);
  }
  FreeMessage(index);
}

void SimNetwork::SetLink(uint32_t from, uint32_t to, const LinkOptions& options) {
  FL_ASSERT(options.Validate().ok());
  Link(from, to).options = options;
}

void SimNetwork::SetAllLinks(const LinkOptions& options) {
  FL_ASSERT(options.Validate().ok());
  for (auto& l : links_) l.options = options;
}

void SimNetwork::Partition(const Grudge& grudge) {
  // A grudge over fewer nodes cuts only among its first nodes; the rest stay connected (e.g. a
  // time service or client node the nemesis must not isolate).
  const uint32_t m = grudge.node_count();
  FL_ASSERT(m <= n_);
  for (uint32_t from = 0; from < n_; ++from) {
    for (uint32_t to = 0; to < n_; ++to) {
      Link(from, to).blocked = from < m && to < m && grudge.blocked(from, to);
    }
  }
}

void SimNetwork::Heal() {
  for (auto& l : links_) l.blocked = false;
}

void SimNetwork::Clog(uint32_t from, uint32_t to, SimTime until) {
  LinkState& l = Link(from, to);
  if (until > l.clogged_until) l.clogged_until = until;
}

void SimNetwork::Hold(uint32_t from, uint32_t to) { Link(from, to).held = true; }

void SimNetwork::Release(uint32_t from, uint32_t to) {
  LinkState& l = Link(from, to);
  l.held = false;
  std::vector<uint32_t> held = std::move(l.held_messages);
  l.held_messages.clear();
  for (uint32_t index : held) Dispatch(index, l, true);
}

void SimNetwork::ReleaseAll() {
  for (uint32_t from = 0; from < n_; ++from) {
    for (uint32_t to = 0; to < n_; ++to) Release(from, to);
  }
}

}  // namespace faultline::sim

namespace faultline::sim {

void SimNetwork::ClearFaults(const LinkOptions& defaults) {
  Heal();
  for (auto& l : links_) l.clogged_until = SimTime();
  ReleaseAll();
  SetAllLinks(defaults);
}

}  // namespace faultline::sim
