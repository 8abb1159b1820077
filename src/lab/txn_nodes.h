// Internal: the nodes of the `distributed-txn` scenario (txn_nodes.cc: the shared base, the shards
// and the ledger consumer; txn_front.cc: the naive server, the 2PC coordinator and the saga
// orchestrator).
//
//   n0, n1  shards: each holds its accounts in a LogStore on its own simulated disk. They apply
//           one leg of a transfer (debit, credit, refund) as a local transaction.
//   n2      the front: the naive application server, the 2PC coordinator or the saga orchestrator
//   n3      the at-least-once broker (txn_broker.h)
//   n4      the ledger: a downstream service consuming every leg's event
//
// Accounts: "s<k>/a0".."s<k>/a3" on shard k, 1000 each, and "s<k>/frozen", which refuses credits
// (the forward step that fails and makes a saga compensate).
//
// Messages: commands to shard k on subject "cmd.s<k>" with id "cmd/T7/debit", leg events on
// "evt.leg" with the effect id "T7/debit" (event id = outbox id = broker message id = inbox key).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "faultline/core/bytes.h"
#include "faultline/env/rpc.h"
#include "faultline/env/task.h"
#include "faultline/outbox/broker.h"
#include "faultline/outbox/outbox.h"
#include "faultline/outbox/relay.h"
#include "faultline/saga/participant.h"
#include "faultline/saga/saga_log.h"
#include "faultline/env/node.h"
#include "faultline/store/log_store.h"
#include "src/lab/txn_observations.h"

namespace faultline::idempotency {
class Inbox;
}

namespace faultline::lab {

enum class TxnDesign : uint8_t { kNaive, kTwoPhase, kHardened };

inline constexpr uint32_t kTxnShards = 2;
inline constexpr uint32_t kTxnFront = 2;
inline constexpr uint32_t kTxnBroker = 3;
inline constexpr uint32_t kTxnLedger = 4;
inline constexpr uint32_t kTxnNodes = 5;
inline constexpr uint32_t kTxnAccounts = 4;  // per shard, besides the frozen one
inline constexpr int64_t kTxnOpening = 1000;

// Shard Rpc methods.
inline constexpr uint16_t kNaiveLeg = 80;  // kind, transfer, account, i64 amount -> u8 applied
inline constexpr uint16_t kPrepare = 81;   // kind, transfer, account, i64 amount -> u8 yes
inline constexpr uint16_t kDecide = 82;    // transfer, u8 commit -> empty

inline constexpr Duration kTxnRpcTimeout = Duration::Millis(150);

// What node code may ask of the world: whether to crash here.
class TxnCrashPoints {
 public:
  enum class Point : uint8_t { kStep, kCoordinatorAfterPrepare };
  virtual ~TxnCrashPoints() = default;
  // True: the caller's node will be crashed by a world event before its next timer fires; it must
  // stop at once (co_await a short sleep, then return).
  virtual bool CrashHere(NodeId self, Point point) = 0;
};

// A leg of a transfer: "debit", "credit", or a compensation, "refund" (of the debit) or "uncredit"
// (of the credit), of `amount` on `account`. `forward_key` is the saga step's forward key (the
// participant guard's key), empty outside sagas.
struct TxnLeg {
  std::string kind;
  std::string transfer;
  std::string account;
  int64_t amount = 0;
  std::string forward_key;
  std::string id() const { return transfer + "/" + kind; }
};
void EncodeLeg(ByteWriter& w, const TxnLeg& leg);
Status DecodeLeg(ByteReader& r, TxnLeg* leg);
uint32_t ShardOf(const std::string& account);

struct TxnNodeContext {
  TxnDesign design = TxnDesign::kHardened;
  TxnCrashPoints* crash = nullptr;
  TxnObservations* obs = nullptr;
  const TrueTime* true_time = nullptr;  // read only for the observation timestamps
};

// What the shards, the front and the ledger share: a store, an outbox with its relay, and a loop
// consuming one durable consumer of the broker.
class TxnNodeBase : public Node {
 protected:
  TxnNodeBase(Env& env, TxnNodeContext ctx) : env_(env), rpc_(env), ctx_(ctx) {}
  void OpenStore();
  int64_t Now() const { return ctx_.true_time->NowNs(); }
  Task<bool> Crashing(TxnCrashPoints::Point point = TxnCrashPoints::Point::kStep);
  // Publishes the outbox to the broker forever: Poll, publish, MarkPublished.
  Task<void> RelayLoop();
  // Fetches from the durable consumer `name` forever; acks a delivery when `handle` returns true.
  Task<void> ConsumeLoop(std::string name,
                         std::function<Task<bool>(const outbox::Delivery&)> handle);

  Env& env_;
  Rpc rpc_;
  TxnNodeContext ctx_;
  std::unique_ptr<LogStore> store_;
  std::unique_ptr<outbox::Outbox> outbox_;
  std::unique_ptr<outbox::Relay> relay_;
};

class TxnShardNode final : public TxnNodeBase {
 public:
  TxnShardNode(Env& env, TxnNodeContext ctx, uint32_t shard);
  ~TxnShardNode() override;
  void Start() override;
  // The sum of this shard's balances (the harness reads it at the end of the run).
  Result<int64_t> Total();

 private:
  // Whether `leg` can apply now (funds for a debit; a credit to a frozen account cannot).
  Result<bool> CanApply(Transaction& txn, const TxnLeg& leg);
  // Applies `leg` in `txn`; the balance change (0 when refused) and whether it was applied.
  Result<bool> ApplyLeg(Transaction& txn, const TxnLeg& leg, int64_t* delta);
  void RecordEffect(const TxnLeg& leg, bool applied, int64_t delta);
  Task<Result<Bytes>> NaiveLeg(Bytes request);
  Result<Bytes> Prepare(std::span<const uint8_t> request);
  Result<Bytes> Decide(std::span<const uint8_t> request);
  Task<bool> HandleCommand(const outbox::Delivery& d);
  // The body of HandleCommand's transaction; kFailedPrecondition when the forward is refused.
  Status CommandTxn(Transaction& txn, const std::string& message_id, const TxnLeg& leg,
                    bool* fresh, bool* applied, int64_t* delta);

  uint32_t shard_;
  std::unique_ptr<idempotency::Inbox> inbox_;
  saga::ParticipantGuard guard_;
};

class TxnLedgerNode final : public TxnNodeBase {
 public:
  TxnLedgerNode(Env& env, TxnNodeContext ctx);
  ~TxnLedgerNode() override;
  void Start() override;

 private:
  Task<bool> HandleEvent(const outbox::Delivery& d);
  std::unique_ptr<idempotency::Inbox> inbox_;
};

struct TxnRequest {
  std::string transfer;
  std::string from, to;
  int64_t amount = 0;
};

// The front: accepts transfers and drives them, by design.
class TxnFrontNode final : public TxnNodeBase {
 public:
  TxnFrontNode(Env& env, TxnNodeContext ctx);
  ~TxnFrontNode() override;
  void Start() override;
  // On this node's executor. `accepted` is called once the transfer is accepted (for the saga:
  // durably started), at most once, never if the node crashes first.
  void Submit(TxnRequest request, std::function<void()> accepted);

 private:
  Task<Result<bool>> CallLeg(uint16_t method, const TxnLeg& leg, uint32_t attempts);
  Task<void> RunNaive(TxnRequest request);
  Task<void> RunTwoPhase(TxnRequest request);
  Task<void> SendDecision(std::string transfer, bool commit);
  Task<void> Recover2pc();
  Status StartSaga(const TxnRequest& request, bool* started);
  // Asks the saga log what to do next for `transfer` and does it: sends a step's command through
  // the outbox, waits out a backoff, or records the end.
  Task<void> Drive(std::string transfer);
  Task<void> RecoverSagas();
  Task<bool> HandleReply(const outbox::Delivery& d);

  std::unique_ptr<saga::SagaLog> sagas_;
};

}  // namespace faultline::lab
