// idempotency's checker: judges the typed observations alone (see idempotency_observations.h).
//
// A request is identified by (client, key, canonical request). The first request under a
// (client, key) — the one first sent earliest — owns the key; a later request under it with
// another canonical request is a reuse. A reuse must be refused as a mismatch once the server is
// known to have recorded the owner: the owner got a 200 or a 409 (both are answered only after the
// claim, and a 409 only after the fingerprint check), or its payment was charged (a charge follows
// a claim). Before that evidence the server may never have seen the owner — every attempt of it
// timed out, was refused or failed before its claim committed — and then the reuse is, to the
// server, the first request under the key: a 200 to it is judged like any first request's.
// Retries of one request must all be answered with the same bytes, and a 200 promises that its
// payment was charged.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "faultline/lab/scenario.h"
#include "src/lab/idempotency_observations.h"

namespace faultline::lab {
namespace {

std::string Seconds(int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f s", static_cast<double>(ns) / 1e9);
  return buf;
}

std::string NodeName(uint32_t node) { return "n" + std::to_string(node); }

using KeyId = std::pair<uint32_t, std::string>;  // (client, key)

constexpr int64_t kNever = INT64_MAX;

struct Owner {
  int64_t first_invoke_ns = 0;
  std::string request;
  std::string payment;
  // The earliest instant at which the server is known to have recorded the owner's claim.
  int64_t recorded_ns = kNever;
};

// The request that owns each (client, key) — the one first sent earliest — and when it is known to
// have been recorded.
std::map<KeyId, Owner> KeyOwners(const IdempotencyObservations& obs) {
  std::map<KeyId, Owner> owners;
  for (const ClientAnswer& a : obs.answers) {
    const KeyId id{a.client, a.key};
    auto it = owners.find(id);
    if (it == owners.end() || a.first_invoke_ns < it->second.first_invoke_ns) {
      owners[id] = Owner{a.first_invoke_ns, a.request, a.payment, kNever};
    }
  }
  std::map<std::string, int64_t> first_charge;  // payment -> time of its first charge
  for (const ProviderCharge& c : obs.charges) first_charge.try_emplace(c.payment, c.time_ns);
  for (const ClientAnswer& a : obs.answers) {
    Owner& owner = owners.at(KeyId{a.client, a.key});
    if (a.request != owner.request) continue;
    if (a.kind == ClientAnswerKind::kCharged || a.kind == ClientAnswerKind::kInProgress) {
      owner.recorded_ns = std::min(owner.recorded_ns, a.time_ns);
    }
  }
  for (auto& [id, owner] : owners) {
    auto it = first_charge.find(owner.payment);
    if (it != first_charge.end()) owner.recorded_ns = std::min(owner.recorded_ns, it->second);
  }
  return owners;
}

void CheckDoubleCharges(const IdempotencyObservations& obs, RunResult* result,
                        std::map<std::string, int64_t>* charged) {
  std::map<std::string, std::vector<const ProviderCharge*>> by_payment;
  for (const ProviderCharge& c : obs.charges) by_payment[c.payment].push_back(&c);
  int64_t extra = 0;
  int64_t payments = 0;
  std::string detail;
  for (const auto& [payment, list] : by_payment) {
    (*charged)[payment] = static_cast<int64_t>(list.size());
    if (list.size() < 2) continue;
    ++payments;
    extra += static_cast<int64_t>(list.size()) - 1;
    if (detail.empty()) {
      detail = "payment " + payment + " charged " + std::to_string(list.size()) +
               " times, expected once (";
      for (size_t i = 0; i < list.size(); ++i) {
        detail += (i ? ", " : "") + Seconds(list[i]->time_ns) + " by " + NodeName(list[i]->node) +
                  " as " + list[i]->charge_id;
      }
      detail += ")";
    }
  }
  result->Violate("double-charge", extra, detail);
  result->metrics["double_charges"] = static_cast<double>(extra);
  result->metrics["double_charged_payments"] = static_cast<double>(payments);
}

void CheckAnswers(const IdempotencyObservations& obs, const std::map<std::string, int64_t>& charged,
                  RunResult* result, std::set<std::string>* lost) {
  const std::map<KeyId, Owner> owners = KeyOwners(obs);
  // First 200 body per request, keyed by (client, key, request).
  std::map<std::tuple<uint32_t, std::string, std::string>, const ClientAnswer*> first_body;
  int64_t mismatches = 0;
  for (const ClientAnswer& a : obs.answers) {
    const Owner& key_owner = owners.at(KeyId{a.client, a.key});
    const bool owner = key_owner.request == a.request;
    if (a.kind == ClientAnswerKind::kMismatch) {
      ++mismatches;
      if (owner) {
        result->Violate("false-mismatch", 1,
                        "client " + std::to_string(a.client) + " key " + a.key +
                            ": its first request was refused as a mismatch at " +
                            Seconds(a.time_ns) + ", expected a charge or a replay");
      }
      continue;
    }
    if (a.kind != ClientAnswerKind::kCharged) continue;
    if (!owner && key_owner.recorded_ns < a.time_ns) {
      result->Violate("key-reuse-not-reported", 1,
                      "client " + std::to_string(a.client) + " reused key " + a.key +
                          " for payment " + a.payment + " (payment " + key_owner.payment +
                          " recorded under it by " + Seconds(key_owner.recorded_ns) + "): got " +
                          "200 '" + a.body + "' at " + Seconds(a.time_ns) +
                          ", expected 422 mismatch");
      continue;
    }
    auto [it, inserted] = first_body.try_emplace({a.client, a.key, a.request}, &a);
    if (!inserted && it->second->body != a.body) {
      result->Violate("response-differs", 1,
                      "client " + std::to_string(a.client) + " key " + a.key + ": attempt " +
                          std::to_string(a.attempt) + " got '" + a.body + "' at " +
                          Seconds(a.time_ns) + ", expected the first answer '" +
                          it->second->body + "' (attempt " +
                          std::to_string(it->second->attempt) + ")");
    }
    if (charged.count(a.payment) == 0 && lost->insert(a.payment).second) {
      result->Violate("lost-charge", 1,
                      "payment " + a.payment + " answered 200 to client " +
                          std::to_string(a.client) + " at " + Seconds(a.time_ns) +
                          ", expected a charge at the provider, saw none");
    }
  }
  result->metrics["mismatches"] = static_cast<double>(mismatches);
}

void CheckAcks(const IdempotencyObservations& obs, const std::map<std::string, int64_t>& charged,
               RunResult* result, std::set<std::string>* lost) {
  for (const BrokerAck& ack : obs.acks) {
    if (charged.count(ack.payment) != 0 || !lost->insert(ack.payment).second) continue;
    result->Violate("lost-charge", 1,
                    "message " + ack.message_id + " (payment " + ack.payment + ") acked by " +
                        NodeName(ack.consumer) + " at " + Seconds(ack.time_ns) +
                        ", expected a charge at the provider, saw none");
  }
}

}  // namespace

const char* ClientAnswerKindName(ClientAnswerKind kind) {
  switch (kind) {
    case ClientAnswerKind::kCharged: return "charged";
    case ClientAnswerKind::kMismatch: return "mismatch";
    case ClientAnswerKind::kInProgress: return "in-progress";
    case ClientAnswerKind::kError: return "error";
    case ClientAnswerKind::kTimeout: return "timeout";
    case ClientAnswerKind::kRefused: return "refused";
  }
  return "?";
}

void CheckIdempotency(const IdempotencyObservations& obs, RunResult* result) {
  std::map<std::string, int64_t> charged;  // payment -> charges applied
  CheckDoubleCharges(obs, result, &charged);
  std::set<std::string> lost;
  CheckAnswers(obs, charged, result, &lost);
  CheckAcks(obs, charged, result, &lost);
  const IdempotencyCounters& c = obs.counters;
  result->metrics["charges"] = static_cast<double>(obs.charges.size());
  result->metrics["lost_charges"] = static_cast<double>(lost.size());
  result->metrics["replays"] = static_cast<double>(c.replays);
  result->metrics["takeovers"] = static_cast<double>(c.takeovers);
  result->metrics["fenced"] = static_cast<double>(c.fenced);
  result->metrics["redeliveries"] = static_cast<double>(c.redeliveries);
  result->metrics["duplicate_deliveries"] = static_cast<double>(c.duplicate_deliveries);
  result->metrics["late_acks"] = static_cast<double>(c.late_acks);
  result->metrics["crashes_aimed"] = static_cast<double>(c.crashes_aimed);
  result->metrics["pauses_aimed"] = static_cast<double>(c.pauses_aimed);
  result->metrics["broker_crashes"] = static_cast<double>(c.broker_crashes);
  result->metrics["messages"] = static_cast<double>(c.messages_published);
  result->metrics["client_answers"] = static_cast<double>(obs.answers.size());
  // Liveness, not judged: requests that never got a definite answer (200 or 422).
  std::set<std::tuple<uint32_t, std::string, std::string>> requests, resolved;
  for (const ClientAnswer& a : obs.answers) {
    requests.insert({a.client, a.key, a.request});
    if (a.kind == ClientAnswerKind::kCharged || a.kind == ClientAnswerKind::kMismatch) {
      resolved.insert({a.client, a.key, a.request});
    }
  }
  result->metrics["requests"] = static_cast<double>(requests.size());
  result->metrics["requests_unresolved"] = static_cast<double>(requests.size() - resolved.size());
  std::set<std::string> acked;
  for (const BrokerAck& a : obs.acks) acked.insert(a.message_id);
  result->metrics["acks"] = static_cast<double>(obs.acks.size());
  // Liveness, not judged: messages never acked by the end of the run.
  result->metrics["unacked_messages"] =
      static_cast<double>(c.messages_published - static_cast<int64_t>(acked.size()));
}

}  // namespace faultline::lab
