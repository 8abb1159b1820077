// The README's "Idempotency in your own service" example, compiled and run as a test so it can
// never go stale. The text between the markers is the README snippet.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "faultline/core/random.h"
#include "faultline/sim/disk.h"

// [readme-idempotency-example]
#include "faultline/idempotency/http.h"
#include "faultline/idempotency/idempotency_keys.h"
#include "faultline/store/log_store.h"

using namespace faultline;
using namespace faultline::idempotency;

struct HttpRequest {
  std::string account;  // the authenticated caller: the key's scope
  std::string method, path, body;
  std::optional<std::string> idempotency_key;  // the raw Idempotency-Key field value, if any
};

struct HttpResponse {
  int status = 0;
  int64_t retry_after_seconds = -1;  // -1: no Retry-After header
  std::string body;
};

// The stored response is the service's own serialization; it is replayed byte for byte.
std::string Serialize(const HttpResponse& r) { return std::to_string(r.status) + "\n" + r.body; }
HttpResponse Deserialize(const std::string& s) {
  const size_t nl = s.find('\n');
  return {std::stoi(s.substr(0, nl)), -1, s.substr(nl + 1)};
}

class ChargeEndpoint {
 public:
  // `store` holds both the service's tables and the idempotency records, so a charge and its
  // stored response commit in one local transaction.
  ChargeEndpoint(LocalStore& store, Clock& clock)
      : store_(store), keys_(IdempotencyKeys::Create(store, clock).value()) {}

  HttpResponse Post(const HttpRequest& req) {
    const Result<std::string> key = ParseIdempotencyKeyHeader(req.idempotency_key);
    if (!key.ok()) return Send(AnswerForBadKey(key.status()));  // 400: missing or malformed
    const Fingerprint fp = FingerprintOf(req.method + " " + req.path + "\n" + req.body);
    const Result<Claim> claim = keys_->Acquire(req.account, *key, fp, Duration::Seconds(30));
    if (!claim.ok()) {
      if (claim.status().code() == StatusCode::kInvalidArgument) {
        return Send(AnswerForBadKey(claim.status()));  // 400: e.g. a key over 255 bytes
      }
      return {503, 1, "store unavailable"};
    }
    const HttpAnswer answer = AnswerForClaim(*claim);
    if (answer.action == HttpAction::kReplay) return Deserialize(answer.body);
    if (answer.action == HttpAction::kReject) return Send(answer);  // 409 or 422

    // We own the key: do the work and store the response in the same transaction.
    const HttpResponse response{201, -1, "{\"charged\":" + req.body + "}"};
    const Status done = RunInTransaction(store_, [&](Transaction& txn) -> Status {
      FL_RETURN_IF_ERROR(txn.Put("charges/" + req.account + "/" + *key, req.body));
      return keys_->Complete(txn, req.account, *key, claim->attempt, Serialize(response));
    });
    if (!done.ok()) {
      // Nothing committed: free the key so the client's retry runs at once instead of waiting
      // for the lease (a superseded attempt is refused here too, harmlessly).
      keys_->Release(req.account, *key, claim->attempt).IgnoreError();
      return {503, 1, "try again"};
    }
    return response;
  }

 private:
  static HttpResponse Send(const HttpAnswer& a) {
    return {a.status, a.retry_after_seconds, a.body};
  }

  LocalStore& store_;
  std::unique_ptr<IdempotencyKeys> keys_;
};
// [readme-idempotency-example]

namespace {

struct Service {
  Service() : rng(7), disk(&rng), store(LogStore::Open(disk).value()), endpoint(*store, clock) {}
  Rng rng;
  sim::SimDisk disk;
  ManualClock clock;
  std::unique_ptr<LogStore> store;
  ChargeEndpoint endpoint;

  size_t Charges() {
    auto txn = store->Begin().value();
    const size_t n = txn->Scan("charges/", "charges0", 1000).value().size();
    txn->Rollback();
    return n;
  }
};

TEST(ReadmeIdempotencyExample, RetriesReplayAndMisuseIsAnswered) {
  Service s;
  const HttpRequest req{"acct_1", "POST", "/charges", "100", "\"a4f1c2\""};
  const HttpResponse first = s.endpoint.Post(req);
  EXPECT_EQ(first.status, 201);
  // The retry gets the same answer and charges nothing.
  const HttpResponse retry = s.endpoint.Post(req);
  EXPECT_EQ(retry.status, first.status);
  EXPECT_EQ(retry.body, first.body);
  EXPECT_EQ(s.Charges(), 1u);
  // The same key with another body is a client error (422); no key or a malformed one is 400.
  HttpRequest other = req;
  other.body = "999";
  EXPECT_EQ(s.endpoint.Post(other).status, 422);
  other = req;
  other.idempotency_key.reset();
  EXPECT_EQ(s.endpoint.Post(other).status, 400);
  other.idempotency_key = "a4f1c2";  // a token, not a quoted sf-string
  EXPECT_EQ(s.endpoint.Post(other).status, 400);
  other.idempotency_key = "\"" + std::string(256, 'k') + "\"";
  EXPECT_EQ(s.endpoint.Post(other).status, 400);
  // Another account may use the same key.
  other = req;
  other.account = "acct_2";
  EXPECT_EQ(s.endpoint.Post(other).status, 201);
  EXPECT_EQ(s.Charges(), 2u);
}

TEST(ReadmeIdempotencyExample, ARequestStillInFlightIsAConflictWithRetryAfter) {
  Service s;
  auto keys = IdempotencyKeys::Create(*s.store, s.clock).value();
  // Another server is processing the same request right now.
  const Fingerprint fp = FingerprintOf("POST /charges\n100");
  ASSERT_EQ(keys->Acquire("acct_1", "k9", fp, Duration::Seconds(30)).value().state,
            ClaimState::kClaimed);
  s.clock.Advance(Duration::Millis(12'500));
  const HttpResponse busy = s.endpoint.Post({"acct_1", "POST", "/charges", "100", "\"k9\""});
  EXPECT_EQ(busy.status, 409);
  EXPECT_EQ(busy.retry_after_seconds, 18);  // 17.5 s left, rounded up
  EXPECT_NE(busy.body.find("\"status\":409"), std::string::npos);
  // It died: once its lease runs out, the retry takes over and charges once.
  s.clock.Advance(Duration::Seconds(18));
  EXPECT_EQ(s.endpoint.Post({"acct_1", "POST", "/charges", "100", "\"k9\""}).status, 201);
  EXPECT_EQ(s.Charges(), 1u);
}

}  // namespace
