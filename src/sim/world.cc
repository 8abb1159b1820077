#include "faultline/sim/world.h"

#include <string>
#include <string_view>

#include "faultline/core/options.h"
#include "faultline/sim/nemesis.h"

namespace faultline::sim {
namespace {

// "n<node><rest>" for the trace. Built by appending: GCC 12 at -O3 reports a false -Wrestrict
// (GCC bug 105651) inside operator+(const char*, std::string&&), which `"n" + std::to_string(..)`
// calls.
std::string NodeLine(uint64_t node, std::string_view rest) {
  std::string line = "n";
  line += std::to_string(node);
  line += rest;
  return line;
}

}  // namespace

Status WorldOptions::Validate() const {
  FL_CHECK_OPTION(node_count >= 1 && node_count <= 1024, "node_count must be in [1, 1024]");
  FL_RETURN_IF_ERROR(links.Validate());
  FL_CHECK_OPTION(clocks.offset_max >= Duration::Zero(), "clocks.offset_max must be >= 0");
  FL_CHECK_OPTION(clocks.drift_ppm_max >= 0 && clocks.drift_ppm_max <= 100'000,
                  "clocks.drift_ppm_max must be in [0, 100000]");
  FL_CHECK_OPTION(events_max > 0, "events_max must be > 0");
  return Status::Ok();
}

// One node's process slot: its Env (clock, executor, transport, disk, random) and, while up, its
// node object and coroutines.
class World::Process final : public Env, public Executor, public Transport {
 public:
  Process(World* world, uint32_t index, Duration mono_base, Duration wall_offset, int64_t drift_ppm)
      : world_(world),
        index_(index),
        clock_(&world->scheduler_, mono_base, wall_offset, drift_ppm),
        disk_rng_(world->seed_, static_cast<uint64_t>(Stream::kDisk) * 7919 + index),
        disk_(&disk_rng_, world->options_.disk),
        rng_(world->seed_, static_cast<uint64_t>(Stream::kNodeBase) + index) {
    disk_rng_.set_hash_sink(&world->hash_);
    rng_.set_hash_sink(&world->hash_);
  }

  // Env
  NodeId self() const override { return NodeId(index_); }
  Clock& clock() override { return clock_; }
  Executor& executor() override { return *this; }
  Transport& transport() override { return *this; }
  Disk& disk() override { return disk_; }
  Rng& random() override { return rng_; }
  void Spawn(Task<void> task) override {
    FL_ASSERT_MSG(state == ProcessState::kUp || booting, "Spawn on a process that is not running");
    tasks.Spawn(std::move(task));
  }

  // Executor: timers are armed on this node's monotonic clock.
  TimerId ScheduleAfter(Duration delay, Callback callback) override {
    // BUGGIFY: a timer fires late (a stalled process, a loaded machine): never early.
    if (FL_BUGGIFY_WITH_PERCENT("timer.delay_spike", 1)) {
      delay += BuggifyRandom().Range(Duration::Millis(1), Duration::Seconds(1));
    }
    const SimTime at = world_->now() + clock_.TrueDelayFor(delay);
    const int64_t deadline = (clock_.Now() + delay).nanos();
    const EventId id = world_->scheduler_.AtNodeDeadline(at, EventOwner{index_, incarnation},
                                                         deadline, std::move(callback));
    return TimerId{id.value};
  }
  bool Cancel(TimerId id) override { return world_->scheduler_.Cancel(EventId{id.value}); }

  // Transport
  Status Send(NodeId to, uint16_t type, uint16_t schema_version,
              std::span<const uint8_t> payload) override {
    return world_->network_->Send(index_, to.value(), type, schema_version, payload);
  }
  void SetHandler(MessageHandler new_handler) override { handler = std::move(new_handler); }

  SimClock& sim_clock() { return clock_; }
  SimDisk& sim_disk() { return disk_; }

  ProcessState state = ProcessState::kDown;
  uint32_t incarnation = 0;
  bool booting = false;
  NodeFactory factory;
  std::unique_ptr<Node> node;
  TaskSet tasks;
  MessageHandler handler;
  std::vector<EventId> parked;

 private:
  World* world_;
  uint32_t index_;
  SimClock clock_;
  Rng disk_rng_;
  SimDisk disk_;
  Rng rng_;
};

World::World(uint64_t seed, WorldOptions options)
    : seed_(seed),
      options_(options),
      scheduler_rng_(seed, static_cast<uint64_t>(Stream::kScheduler)),
      network_rng_(seed, static_cast<uint64_t>(Stream::kNetwork)),
      disk_rng_(seed, static_cast<uint64_t>(Stream::kDisk)),
      clock_rng_(seed, static_cast<uint64_t>(Stream::kClock)),
      nemesis_rng_(seed, static_cast<uint64_t>(Stream::kNemesis)),
      workload_rng_(seed, static_cast<uint64_t>(Stream::kWorkload)),
      scheduler_(&scheduler_rng_, &hash_),
      buggify_rng_(seed, static_cast<uint64_t>(Stream::kBuggify)) {
  const Status valid = options_.Validate();
  FL_ASSERT_MSG(valid.ok(), valid.ToString().c_str());
  hash_ = HashMix(0, seed);
  for (Rng* r : {&scheduler_rng_, &network_rng_, &disk_rng_, &clock_rng_, &nemesis_rng_,
                 &workload_rng_}) {
    r->set_hash_sink(&hash_);
  }
  network_ = std::make_unique<SimNetwork>(options_.node_count, &scheduler_, &network_rng_,
                                          options_.links);
  network_->set_receiver(
      [this](uint32_t from, uint32_t to, const FrameView& f) { OnMessage(from, to, f); });
  const ClockOptions& c = options_.clocks;
  for (uint32_t i = 0; i < options_.node_count; ++i) {
    const Duration mono_base = Duration::Seconds(clock_rng_.Range(1, 100'000));
    const Duration wall_offset = clock_rng_.Range(-c.offset_max, c.offset_max);
    const int64_t drift = clock_rng_.Range(-c.drift_ppm_max, c.drift_ppm_max);
    // wall = epoch + mono + offset; start every node's wall near true time plus its error.
    processes_.push_back(
        std::make_unique<Process>(this, i, mono_base, wall_offset - mono_base, drift));
  }
}

World::~World() {
  // Tear coroutines down before the node objects they reference, and nodes before the network.
  for (auto& p : processes_) {
    p->tasks.DestroyAll();
    p->node.reset();
    p->tasks.DestroyAll();
  }
}

World::Process& World::process(NodeId id) {
  FL_ASSERT(id.value() < processes_.size());
  return *processes_[id.value()];
}
const World::Process& World::process(NodeId id) const {
  FL_ASSERT(id.value() < processes_.size());
  return *processes_[id.value()];
}

EventId World::Schedule(Duration after, EventCallback callback) {
  return scheduler_.At(now() + after, EventOwner{}, std::move(callback));
}

EventId World::ScheduleAt(SimTime at, EventCallback callback) {
  return scheduler_.At(at, EventOwner{}, std::move(callback));
}

bool World::Step() { return RunNext(SimTime::Max()); }

bool World::RunNext(SimTime limit) {
  const EventId id = scheduler_.PopNext(limit);
  if (!id) return false;
  const EventOwner owner = scheduler_.owner(id);
  if (owner.node != EventOwner::kWorld) {
    Process& p = *processes_[owner.node];
    if (owner.incarnation != EventOwner::kAnyIncarnation &&
        (p.state == ProcessState::kDown || owner.incarnation != p.incarnation)) {
      scheduler_.Drop(id);  // a timer of a crashed incarnation
      return true;
    }
    if (p.state == ProcessState::kPaused) {
      p.parked.push_back(id);  // runs when the process resumes
      return true;
    }
    // A timer armed before this node's clock rate changed may come due early in true time;
    // re-arm it for the rest of its monotonic delay, so a timer never fires before its deadline.
    const int64_t deadline = scheduler_.mono_deadline_ns(id);
    if (deadline != INT64_MIN) {
      const int64_t mono = p.sim_clock().Now().nanos();
      if (mono < deadline) {
        scheduler_.Requeue(id, now() + p.sim_clock().TrueDelayFor(Duration::Nanos(deadline - mono)));
        return true;
      }
    }
  }
  hash_ = HashMix(hash_, owner.node);
  if (trace_ && owner.node != EventOwner::kWorld && owner.incarnation != EventOwner::kAnyIncarnation) {
    trace_(now(), NodeLine(owner.node, " timer"));
  }
  FL_ASSERT_MSG(scheduler_.executed() < options_.events_max, "events_max exceeded: livelock?");
  in_node_event_ = owner.node != EventOwner::kWorld;
  {
    ScopedSimHooks hooks(&hooks_);
    scheduler_.Run(id);
  }
  in_node_event_ = false;
  if (event_hashes_ != nullptr) event_hashes_->push_back(hash_);
  return true;
}

void World::RunUntil(SimTime until) {
  while (RunNext(until)) {
  }
  scheduler_.AdvanceTo(until);
}

void World::OnMessage(uint32_t from, uint32_t to, const FrameView& frame) {
  Process& p = *processes_[to];
  FL_ASSERT(p.state != ProcessState::kPaused);
  if (p.state == ProcessState::kDown) {
    ++network_->mutable_stats().dropped_down;
    return;
  }
  if (trace_) {
    trace_(now(), NodeLine(from, "->") + NodeLine(to, " msg type=") + std::to_string(frame.type) +
                      " bytes=" + std::to_string(frame.payload.size()));
  }
  if (p.handler) p.handler(NodeId(from), frame);
}

void World::Boot(NodeId id, NodeFactory factory) {
  Process& p = process(id);
  FL_ASSERT_MSG(p.state == ProcessState::kDown, "Boot of a running process");
  p.factory = std::move(factory);
  Restart(id);
}

void World::Restart(NodeId id) {
  Process& p = process(id);
  if (p.state != ProcessState::kDown) return;
  FL_ASSERT_MSG(static_cast<bool>(p.factory), "Restart of a process that was never booted");
  FL_ASSERT(!in_node_event_);
  p.state = ProcessState::kUp;
  Trace(NodeLine(id.value(), " start (incarnation ") + std::to_string(p.incarnation) + ")");
  p.booting = true;
  p.node = p.factory(p);
  p.booting = false;
  FL_ASSERT(p.node != nullptr);
  p.node->Start();
}

void World::Crash(NodeId id) {
  Process& p = process(id);
  if (p.state == ProcessState::kDown) return;
  FL_ASSERT_MSG(!in_node_event_, "Crash is a world action, not a node action");
  Trace(NodeLine(id.value(), " crash"));
  p.state = ProcessState::kDown;
  ++p.incarnation;
  p.handler = nullptr;
  p.tasks.DestroyAll();
  p.node.reset();
  p.tasks.DestroyAll();
  p.sim_disk().Crash();
  // Parked events go back to the queue: stale timers are dropped there, messages are delivered to
  // a down process (and counted as lost), which frees their buffers.
  for (EventId e : p.parked) {
    if (scheduler_.IsPending(e)) scheduler_.Requeue(e, now());
  }
  p.parked.clear();
}

void World::Pause(NodeId id) {
  Process& p = process(id);
  if (p.state != ProcessState::kUp) return;
  FL_ASSERT(!in_node_event_);
  Trace(NodeLine(id.value(), " pause"));
  p.state = ProcessState::kPaused;
}

void World::Resume(NodeId id) {
  Process& p = process(id);
  if (p.state != ProcessState::kPaused) return;
  Trace(NodeLine(id.value(), " resume"));
  p.state = ProcessState::kUp;
  // Keep the order in which the events came due: one nanosecond apart.
  int64_t k = 0;
  for (EventId e : p.parked) {
    if (scheduler_.IsPending(e)) scheduler_.Requeue(e, now() + Duration::Nanos(k++));
  }
  p.parked.clear();
}

ProcessState World::state(NodeId id) const { return process(id).state; }
Node* World::node(NodeId id) { return process(id).node.get(); }
Env& World::env(NodeId id) { return process(id); }
uint32_t World::incarnation(NodeId id) const { return process(id).incarnation; }
SimClock& World::clock(NodeId id) { return process(id).sim_clock(); }
SimDisk& World::disk(NodeId id) { return process(id).sim_disk(); }

Rng& World::rng(Stream stream) {
  switch (stream) {
    case Stream::kScheduler: return scheduler_rng_;
    case Stream::kNetwork: return network_rng_;
    case Stream::kDisk: return disk_rng_;
    case Stream::kClock: return clock_rng_;
    case Stream::kNemesis: return nemesis_rng_;
    case Stream::kWorkload: return workload_rng_;
    case Stream::kBuggify: return buggify_rng_;
    case Stream::kNodeBase: break;
  }
  FL_UNREACHABLE();
}

bool World::AdmitOp() {
  ops_started_ = ops_started_ < 0 ? 1 : ops_started_ + 1;
  return plan_ == nullptr || !plan_->ops_max || ops_started_ <= *plan_->ops_max;
}

void World::EnableBuggify() {
  buggify_rng_.set_hash_sink(&hash_);
  hooks_.buggify_rng = &buggify_rng_;
}

void World::HealAll() {
  Trace("heal all");
  network_->ClearFaults(options_.links);
  for (uint32_t i = 0; i < processes_.size(); ++i) {
    Process& p = *processes_[i];
    if (p.state == ProcessState::kPaused) Resume(NodeId(i));
    if (p.state == ProcessState::kDown && p.factory) Restart(NodeId(i));
    p.sim_clock().ResetWall(Duration::Zero());
  }
}

}  // namespace faultline::sim
