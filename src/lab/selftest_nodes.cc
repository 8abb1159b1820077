// The `selftest` scenario's counter nodes (selftest_nodes.h).
#include "src/lab/selftest_nodes.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/env/task.h"
#include "faultline/store/log_store.h"

namespace faultline::lab::selftest {
namespace {

constexpr uint16_t kMsgDelta = 1;  // naive: varint delta
constexpr uint16_t kMsgState = 2;  // hardened: varint n, then n varint slot counts
constexpr uint16_t kSchemaV1 = 1;
constexpr Duration kGossipInterval = Duration::Millis(50);

class NaiveCounter final : public CounterNode {
 public:
  NaiveCounter(Env& env, CounterSink* sink) : env_(env), sink_(sink) {}

  void Start() override {
    env_.transport().SetHandler([this](NodeId, const FrameView& f) {
      if (f.type != kMsgDelta || f.schema_version != kSchemaV1) return;
      ByteReader r(f.payload);
      uint64_t delta = 0;
      if (r.Varint(&delta).ok() && r.empty()) value_ += static_cast<int64_t>(delta);
    });
  }

  void Increment(uint64_t op_id) override {
    value_ += 1;
    std::vector<uint8_t> payload;
    ByteWriter(&payload).Varint(1);
    for (uint32_t peer = 0; peer < kNodes; ++peer) {
      if (peer != env_.self().value()) {
        env_.transport().Send(NodeId(peer), kMsgDelta, kSchemaV1, payload).IgnoreError();
      }
    }
    sink_->Complete(env_.self().value(), op_id, true);
  }

  int64_t Value() const override { return value_; }

 private:
  Env& env_;
  CounterSink* sink_;
  int64_t value_ = 0;
};

class GCounter final : public CounterNode {
 public:
  GCounter(Env& env, CounterSink* sink, bool durable)
      : env_(env), sink_(sink), durable_(durable), slots_(kNodes, 0) {}

  void Start() override {
    // An I/O error while opening the store (buggified disks) leaves the node up without it: it
    // refuses increments and retries the open.
    const bool opened = !durable_ || OpenStore();
    env_.transport().SetHandler([this](NodeId, const FrameView& f) { OnState(f); });
    if (!opened) env_.Spawn(ReopenLoop());
    env_.Spawn(GossipLoop());
  }

  void Increment(uint64_t op_id) override {
    const uint32_t self = env_.self().value();
    const uint64_t next = slots_[self] + 1;
    if (!durable_) {
      slots_[self] = next;
      sink_->Complete(self, op_id, true);
      return;
    }
    if (store_ == nullptr) {
      sink_->Complete(self, op_id, false);  // the store is not open yet: certainly not applied
      return;
    }
    // Durable before acknowledged: the ack promises the increment survives a crash.
    Status s = RunInTransaction(*store_, [&](Transaction& txn) {
      return txn.Put(SlotKey(self), std::to_string(next));
    });
    if (s.ok()) {
      slots_[self] = next;
      sink_->Complete(self, op_id, true);
      return;
    }
    if (s.code() == StatusCode::kUnavailable) {
      // An I/O failure: the outcome is unknown (LocalStore's contract). The record may be in the
      // page cache, and reopening the store recovers it whole, or not at all; so the increment is
      // neither acknowledged nor refused, and the client's timeout records it as indeterminate.
      // The poisoned store is reopened, which also reloads the slot from what reached the disk.
      if (store_->poisoned()) {
        store_.reset();
        env_.Spawn(ReopenLoop());
      }
      return;
    }
    sink_->Complete(self, op_id, false);
  }

  int64_t Value() const override {
    int64_t sum = 0;
    for (uint64_t v : slots_) sum += static_cast<int64_t>(v);
    return sum;
  }

 private:
  static std::string SlotKey(uint32_t i) { return "slot/" + std::to_string(i); }

  bool OpenStore() {
    auto store = LogStore::Open(env_.disk(), LogStoreOptions{});
    if (!store.ok()) return false;
    store_ = std::move(store).value();
    Load();
    return true;
  }

  Task<void> ReopenLoop() {
    while (store_ == nullptr) {
      // The status is held in a local, as GossipLoop does: with the co_await inside the if
      // condition, GCC 12 built a loop that never ran after a failed open at restart (selftest
      // hardened seed 24 --buggify), so the node never reloaded its own slot.
      const Status slept = co_await Sleep(env_.executor(), Duration::Millis(10));
      if (!slept.ok()) co_return;
      OpenStore();
    }
  }

  void Load() {
    auto txn = store_->Begin();
    FL_ASSERT(txn.ok());
    for (uint32_t i = 0; i < kNodes; ++i) {
      auto v = (*txn)->Get(SlotKey(i));
      FL_ASSERT(v.ok());
      if (v->has_value()) slots_[i] = std::max<uint64_t>(slots_[i], std::stoull(**v));
    }
    (*txn)->Rollback();
  }

  void OnState(const FrameView& f) {
    if (f.type != kMsgState || f.schema_version != kSchemaV1) return;
    ByteReader r(f.payload);
    uint64_t n = 0;
    if (!r.Varint(&n).ok() || n != kNodes) return;
    std::vector<uint64_t> remote(kNodes);
    for (uint64_t& v : remote) {
      if (!r.Varint(&v).ok()) return;
    }
    if (!r.empty()) return;
    // Merge by per-slot maximum. With durability a node's own slot only grows through its own
    // commits; without it, a restarted node relearns its own slot from its peers.
    for (uint32_t i = 0; i < kNodes; ++i) {
      if (durable_ && i == env_.self().value()) continue;
      if (remote[i] > slots_[i]) slots_[i] = remote[i];
    }
  }

  Task<void> GossipLoop() {
    while (true) {
      const Duration jitter = env_.random().Range(Duration::Zero(), kGossipInterval / 2);
      Status slept = co_await Sleep(env_.executor(), kGossipInterval + jitter);
      if (!slept.ok()) co_return;
      std::vector<uint8_t> payload;
      ByteWriter w(&payload);
      w.Varint(kNodes);
      for (uint64_t v : slots_) w.Varint(v);
      for (uint32_t peer = 0; peer < kNodes; ++peer) {
        if (peer != env_.self().value()) {
          env_.transport().Send(NodeId(peer), kMsgState, kSchemaV1, payload).IgnoreError();
        }
      }
    }
  }

  Env& env_;
  CounterSink* sink_;
  bool durable_;
  std::unique_ptr<LogStore> store_;
  std::vector<uint64_t> slots_;
};

}  // namespace

std::unique_ptr<CounterNode> MakeCounterNode(Env& env, CounterDesign design, CounterSink* sink) {
  switch (design) {
    case CounterDesign::kNaive:
      return std::make_unique<NaiveCounter>(env, sink);
    case CounterDesign::kGossip:
      return std::make_unique<GCounter>(env, sink, /*durable=*/false);
    case CounterDesign::kHardened:
      return std::make_unique<GCounter>(env, sink, /*durable=*/true);
  }
  return nullptr;
}

}  // namespace faultline::lab::selftest
