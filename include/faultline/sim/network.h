// File: faultline/sim/network.h
//
// The simulated network: a directed N×N matrix of links. Each send is encoded into a real frame
// (faultline/env/frame.h), given a fate from the network's random stream, and delivered as an event
// owned by the destination node, so a paused node accumulates its inbox and a crashed one loses it.
//
// Per directed link:
//   latency       latency_min + Exponential(latency_mean_extra), drawn per message
//   loss          dropped with this chance
//   duplicate     delivered twice (the copy a little later)
//   reorder       with this chance a message may overtake earlier ones; otherwise the link is FIFO
//   corrupt       one bit flipped; the receiver's frame decoder rejects it (CRC) and counts it
//   blocked       partitioned: every message dropped (see Grudge)
//   clogged       messages wait until the clog lifts, then travel (FoundationDB's clogging)
//   held          messages are kept in flight until Release() (turmoil's hold/release)
// A message from a node to itself is delivered with latency_min and no faults.
#pragma once

// Node code (files compiled with FAULTLINE_NODE_CODE) runs on the real runtime too: it may not see
// the simulator.
#ifdef FAULTLINE_NODE_CODE
#error "node code must not include faultline/sim/ headers"
#endif

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "faultline/core/random.h"
#include "faultline/env/frame.h"
#include "faultline/sim/partition.h"
#include "faultline/sim/scheduler.h"

namespace faultline::sim {

struct LinkOptions {
  Duration latency_min = Duration::Micros(500);
  Duration latency_mean_extra = Duration::Micros(500);
  Ratio loss = Ratio::Zero();
  Ratio duplicate = Ratio::Zero();
  Ratio reorder = Ratio::Zero();
  Ratio corrupt = Ratio::Zero();
  Status Validate() const;
};

struct NetworkStats {
  uint64_t sent = 0;
  uint64_t delivered = 0;
  uint64_t dropped_partition = 0;
  uint64_t dropped_loss = 0;
  uint64_t dropped_down = 0;  // destination crashed at delivery time (counted by the World)
  uint64_t duplicated = 0;
  uint64_t corrupted = 0;
  uint64_t rejected = 0;  // frames the receiver's decoder refused
};

class SimNetwork {
 public:
  // Called for every frame that decodes cleanly at its destination, at delivery time.
  using Receiver = std::function<void(uint32_t from, uint32_t to, const FrameView& frame)>;

  SimNetwork(uint32_t node_count, Scheduler* scheduler, Rng* rng, LinkOptions defaults);

  void set_receiver(Receiver receiver) { receiver_ = std::move(receiver); }

  Status Send(uint32_t from, uint32_t to, uint16_t type, uint16_t schema_version,
              std::span<const uint8_t> payload);

  // Link configuration.
  void SetLink(uint32_t from, uint32_t to, const LinkOptions& options);
  void SetAllLinks(const LinkOptions& options);
  const LinkOptions& link(uint32_t from, uint32_t to) const { return Link(from, to).options; }

  // Partitions: replaces the current grudge; Heal() removes it. A grudge over m < node_count()
  // nodes applies to nodes [0, m) and leaves every link of the others open.
  void Partition(const Grudge& grudge);
  void Heal();
  bool blocked(uint32_t from, uint32_t to) const { return Link(from, to).blocked; }

  void Clog(uint32_t from, uint32_t to, SimTime until);
  void Hold(uint32_t from, uint32_t to);
  void Release(uint32_t from, uint32_t to);
  void ReleaseAll();
  // Ends every network fault: heals partitions, lifts clogs, releases held messages and resets
  // every link to `defaults`.
  void ClearFaults(const LinkOptions& defaults);

  uint32_t node_count() const { return n_; }
  const NetworkStats& stats() const { return stats_; }
  NetworkStats& mutable_stats() { return stats_; }
  const FrameLimits& frame_limits() const { return limits_; }

 private:
  struct Message {
    uint32_t from = 0;
    uint32_t to = 0;
    std::vector<uint8_t> frame;
  };
  struct LinkState {
    LinkOptions options;
    bool blocked = false;
    bool held = false;
    SimTime clogged_until;
    SimTime last_delivery;
    std::vector<uint32_t> held_messages;
  };
  LinkState& Link(uint32_t from, uint32_t to) { return links_[size_t{from} * n_ + to]; }
  const LinkState& Link(uint32_t from, uint32_t to) const { return links_[size_t{from} * n_ + to]; }
  uint32_t AllocMessage();
  void FreeMessage(uint32_t index) { free_messages_.push_back(index); }
  void Dispatch(uint32_t index, LinkState& link, bool allow_faults);
  void ScheduleDelivery(uint32_t index, SimTime at);
  void Deliver(uint32_t index);

  uint32_t n_;
  Scheduler* scheduler_;
  Rng* rng_;
  FrameLimits limits_;
  std::vector<LinkState> links_;
  std::vector<Message> messages_;
  std::vector<uint32_t> free_messages_;
  Receiver receiver_;
  NetworkStats stats_;
};

}  // namespace faultline::sim
