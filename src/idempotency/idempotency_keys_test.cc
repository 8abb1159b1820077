#include "faultline/idempotency/idempotency_keys.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "faultline/core/crc32c.h"
#include "src/idempotency/record.h"
#include "src/idempotency/sha256.h"
#include "src/idempotency/test_util.h"

namespace faultline::idempotency {
namespace {

using testing::Must;
using testing::MustOk;
using testing::SimStoreEnv;

constexpr Duration kLease = Duration::Seconds(30);

std::string HexOf(const Fingerprint& fp) { return internal::Hex(fp.data(), fp.size()); }

TEST(Sha256Test, Fips180Vectors) {
  // FIPS 180-2 appendix B: one block, two blocks, and a million 'a's (many blocks).
  EXPECT_EQ(HexOf(FingerprintOf("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexOf(FingerprintOf("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(HexOf(FingerprintOf(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(HexOf(FingerprintOf("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256Test, PaddingBoundaries) {
  // 55 bytes is the longest message whose padding fits one block; 56..63 need a second block.
  const std::map<size_t, std::string> expected = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"}};
  for (const auto& [n, hex] : expected) {
    EXPECT_EQ(HexOf(FingerprintOf(std::string(n, 'a'))), hex) << n;
  }
}

TEST(FingerprintTest, FromHexAcceptsBothCasesAndRejectsEverythingElse) {
  const Fingerprint fp = FingerprintOf("POST /charges amount=100");
  const std::string hex = HexOf(fp);
  EXPECT_EQ(Must(FingerprintFromHex(hex)), fp);
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(Must(FingerprintFromHex(upper)), fp);
  EXPECT_EQ(FingerprintFromHex(hex.substr(1)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FingerprintFromHex(hex + "0").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FingerprintFromHex("").status().code(), StatusCode::kInvalidArgument);
  std::string bad = hex;
  bad[10] = 'g';
  EXPECT_EQ(FingerprintFromHex(bad).status().code(), StatusCode::kInvalidArgument);
}

TEST(KeyOptionsTest, ValidateNamesTheOffendingField) {
  auto message_of = [](KeyOptions o) { return std::string(o.Validate().message()); };
  EXPECT_TRUE(KeyOptions{}.Validate().ok());
  KeyOptions o;
  o.prefix = "";
  EXPECT_NE(message_of(o).find("prefix"), std::string::npos);
  o = {};
  o.lease_min = Duration::Zero();
  EXPECT_NE(message_of(o).find("lease_min"), std::string::npos);
  o = {};
  o.lease_max = Duration::Millis(1);
  EXPECT_NE(message_of(o).find("lease_max"), std::string::npos);
  o = {};
  o.retention = Duration::Zero();
  EXPECT_NE(message_of(o).find("retention"), std::string::npos);
  o = {};
  o.expire_batch_max = 0;
  EXPECT_NE(message_of(o).find("expire_batch_max"), std::string::npos);
  o = {};
  o.key_bytes_max = 0;
  EXPECT_NE(message_of(o).find("key_bytes_max"), std::string::npos);
  SimStoreEnv env;
  o = {};
  o.retention = Duration::Zero();
  EXPECT_EQ(IdempotencyKeys::Create(*env.store, env.clock, o).status().code(),
            StatusCode::kInvalidArgument);
}

class IdempotencyKeysTest : public ::testing::Test {
 protected:
  IdempotencyKeysTest() { Recreate({}); }
  void Recreate(KeyOptions options) {
    keys_ = Must(IdempotencyKeys::Create(*env_.store, env_.clock, std::move(options)));
  }
  Claim MustAcquire(std::string_view key, const Fingerprint& fp, Duration lease = kLease) {
    return Must(keys_->Acquire("acct_1", key, fp, lease));
  }
  Status CheckpointNow(std::string_view key, uint64_t attempt, std::string_view point) {
    return RunInTransaction(*env_.store, [&](Transaction& txn) {
      return keys_->Checkpoint(txn, "acct_1", key, attempt, point, kLease);
    });
  }

  SimStoreEnv env_;
  std::unique_ptr<IdempotencyKeys> keys_;
  const Fingerprint fp_a_ = FingerprintOf("POST /charges amount=100");
  const Fingerprint fp_b_ = FingerprintOf("POST /charges amount=999");
};

TEST_F(IdempotencyKeysTest, FirstClaimThenInProgressThenMismatch) {
  // Absent → claimed with attempt 1 from the top; the same request while the lease is live →
  // in progress with the lease's remaining time; another request with the key → mismatch.
  const Claim first = MustAcquire("k1", fp_a_);
  EXPECT_EQ(first.state, ClaimState::kClaimed);
  EXPECT_EQ(first.attempt, 1u);
  EXPECT_EQ(first.recovery_point, "");

  env_.clock.Advance(Duration::Seconds(10));
  const Claim again = MustAcquire("k1", fp_a_);
  EXPECT_EQ(again.state, ClaimState::kInProgress);
  EXPECT_EQ(again.attempt, 1u);
  EXPECT_EQ(again.retry_after, Duration::Seconds(20));

  const Claim other = MustAcquire("k1", fp_b_);
  EXPECT_EQ(other.state, ClaimState::kMismatch);
  EXPECT_EQ(other.attempt, 1u);
  EXPECT_STREQ(ClaimStateName(other.state), "mismatch");

  // The scope separates clients: the same key under another scope is a different record.
  EXPECT_EQ(Must(keys_->Acquire("acct_2", "k1", fp_b_, kLease)).state, ClaimState::kClaimed);
}

TEST_F(IdempotencyKeysTest, CompletedKeyReplaysByteIdenticalIncludingBinaryAndEmpty) {
  static constexpr char kBinary[] = "status=201\0\xff\x00\x80 body";
  const std::string binary(kBinary, sizeof(kBinary) - 1);  // NULs and high bytes included
  const std::map<std::string, std::string> responses = {{"bin", binary}, {"empty", ""}};
  for (const auto& [key, response] : responses) {
    const Claim claim = MustAcquire(key, fp_a_);
    ASSERT_EQ(claim.state, ClaimState::kClaimed);
    MustOk(keys_->Complete("acct_1", key, claim.attempt, response));
  }
  // Survives a crash: Complete returned ok only once durable.
  env_.CrashAndReopen();
  Recreate({});
  for (const auto& [key, response] : responses) {
    const Claim replay = MustAcquire(key, fp_a_);
    EXPECT_EQ(replay.state, ClaimState::kCompleted);
    EXPECT_EQ(replay.response, response);
    EXPECT_EQ(replay.response.size(), response.size());
    // A different request with a completed key is a mismatch, not a replay.
    const Claim other = MustAcquire(key, fp_b_);
    EXPECT_EQ(other.state, ClaimState::kMismatch);
    EXPECT_EQ(other.response, "");
  }
}

TEST_F(IdempotencyKeysTest, RetentionBoundaryIsInclusive) {
  // Replayed while now < completion + retention; at exactly completion + retention the record
  // counts as absent and the key is claimed afresh, with the next attempt number.
  const Claim claim = MustAcquire("k", fp_a_);
  MustOk(keys_->Complete("acct_1", "k", claim.attempt, "resp"));
  env_.clock.Advance(keys_->options().retention - Duration::Nanos(1));
  EXPECT_EQ(MustAcquire("k", fp_a_).state, ClaimState::kCompleted);
  env_.clock.Advance(Duration::Nanos(1));
  const Claim fresh = MustAcquire("k", fp_b_);
  EXPECT_EQ(fresh.state, ClaimState::kClaimed);
  EXPECT_EQ(fresh.attempt, 2u);
  EXPECT_EQ(fresh.recovery_point, "");
}

TEST_F(IdempotencyKeysTest, ExpiredLeaseIsTakenOverAndTheOldAttemptIsFencedOut) {
  const Claim first = MustAcquire("k", fp_a_);
  MustOk(CheckpointNow("k", first.attempt, "charge_created"));
  // The checkpoint extended the lease to now + 30 s: one nanosecond before it, still live.
  env_.clock.Advance(kLease - Duration::Nanos(1));
  EXPECT_EQ(MustAcquire("k", fp_a_).state, ClaimState::kInProgress);
  EXPECT_EQ(MustAcquire("k", fp_a_).retry_after, Duration::Nanos(1));
  env_.clock.Advance(Duration::Nanos(1));  // exactly lease_until: expired
  // A takeover is for the same request only.
  EXPECT_EQ(MustAcquire("k", fp_b_).state, ClaimState::kMismatch);
  const Claim second = MustAcquire("k", fp_a_);
  EXPECT_EQ(second.state, ClaimState::kClaimed);
  EXPECT_EQ(second.attempt, 2u);
  EXPECT_EQ(second.recovery_point, "charge_created");

  // The paused first attempt wakes up: every write it tries is fenced and writes nothing.
  const auto before = env_.Dump();
  EXPECT_EQ(keys_->Complete("acct_1", "k", first.attempt, "late").code(), StatusCode::kFencedOut);
  EXPECT_EQ(CheckpointNow("k", first.attempt, "x").code(), StatusCode::kFencedOut);
  EXPECT_EQ(keys_->Release("acct_1", "k", first.attempt).code(), StatusCode::kFencedOut);
  EXPECT_EQ(env_.Dump(), before);

  MustOk(keys_->Complete("acct_1", "k", second.attempt, "winner"));
  EXPECT_EQ(keys_->Complete("acct_1", "k", first.attempt, "late").code(), StatusCode::kFencedOut);
  const Claim replay = MustAcquire("k", fp_a_);
  EXPECT_EQ(replay.state, ClaimState::kCompleted);
  EXPECT_EQ(replay.response, "winner");
}

TEST_F(IdempotencyKeysTest, AbandonedClaimCountsAsAbsentRetentionAfterItsLeaseRanOut) {
  // In progress, lease over, nobody retried: until lease_until + retention the same request takes
  // it over and resumes; from then on the record is treated exactly as if Expire had deleted it.
  const Claim first = MustAcquire("k", fp_a_);
  MustOk(CheckpointNow("k", first.attempt, "p1"));
  env_.clock.Advance(kLease + keys_->options().retention - Duration::Nanos(1));
  EXPECT_EQ(MustAcquire("k", fp_b_).state, ClaimState::kMismatch);
  const Claim second = MustAcquire("k", fp_a_);
  EXPECT_EQ(second.attempt, 2u);
  EXPECT_EQ(second.recovery_point, "p1");
  env_.clock.Advance(kLease + keys_->options().retention);  // exactly at the new expires_at
  const Claim third = MustAcquire("k", fp_b_);
  EXPECT_EQ(third.state, ClaimState::kClaimed);
  EXPECT_EQ(third.attempt, 3u);
  EXPECT_EQ(third.recovery_point, "");
  EXPECT_EQ(keys_->Complete("acct_1", "k", second.attempt, "r").code(), StatusCode::kFencedOut);
}

TEST_F(IdempotencyKeysTest, ReleaseLetsTheNextClaimStartAfreshWithAHigherAttempt) {
  const Claim first = MustAcquire("k", fp_a_);
  MustOk(CheckpointNow("k", first.attempt, "p1"));
  MustOk(keys_->Release("acct_1", "k", first.attempt));
  MustOk(keys_->Release("acct_1", "k", first.attempt));  // again: idempotent
  EXPECT_EQ(keys_->Complete("acct_1", "k", first.attempt, "r").code(), StatusCode::kFencedOut);
  EXPECT_EQ(CheckpointNow("k", first.attempt, "p2").code(), StatusCode::kFencedOut);
  // Any request may claim a released key; it starts from the top.
  const Claim second = MustAcquire("k", fp_b_);
  EXPECT_EQ(second.state, ClaimState::kClaimed);
  EXPECT_EQ(second.attempt, 2u);
  EXPECT_EQ(second.recovery_point, "");
  // Regression (a deleted record would restart at attempt 1 and let the released holder's
  // token be live again): the released attempt stays fenced after the new claim.
  EXPECT_EQ(keys_->Complete("acct_1", "k", first.attempt, "r").code(), StatusCode::kFencedOut);
}

TEST_F(IdempotencyKeysTest, CompleteIsIdempotentForItsOwnAttemptOnly) {
  EXPECT_EQ(keys_->Complete("acct_1", "none", 1, "r").code(), StatusCode::kNotFound);
  EXPECT_EQ(keys_->Release("acct_1", "none", 1).code(), StatusCode::kNotFound);
  EXPECT_EQ(CheckpointNow("none", 1, "p").code(), StatusCode::kNotFound);
  const Claim claim = MustAcquire("k", fp_a_);
  EXPECT_EQ(keys_->Complete("acct_1", "k", claim.attempt + 1, "r").code(), StatusCode::kFencedOut);
  MustOk(keys_->Complete("acct_1", "k", claim.attempt, "r"));
  MustOk(keys_->Complete("acct_1", "k", claim.attempt, "r"));
  EXPECT_EQ(keys_->Complete("acct_1", "k", claim.attempt, "other").code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(CheckpointNow("k", claim.attempt, "p").code(), StatusCode::kFencedOut);
  EXPECT_EQ(keys_->Release("acct_1", "k", claim.attempt).code(), StatusCode::kFencedOut);
  EXPECT_EQ(MustAcquire("k", fp_a_).response, "r");
}

TEST_F(IdempotencyKeysTest, BadInputIsInvalidArgumentAndWritesNothing) {
  KeyOptions options;
  options.response_bytes_max = 100;
  Recreate(options);
  const Claim claim = MustAcquire("k", fp_a_);
  const auto before = env_.Dump();
  const std::string long_name(256, 'a');
  const std::string max_name(255, 'a');
  const std::string nonprintable("ke\ny", 4);
  const std::string with_nul("ke\0y", 4);
  for (const std::string& bad :
       {std::string(), long_name, nonprintable, with_nul, std::string("caf\xc3\xa9")}) {
    EXPECT_EQ(keys_->Acquire("acct_1", bad, fp_a_, kLease).status().code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(keys_->Acquire(bad, "k", fp_a_, kLease).status().code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(keys_->Complete(bad, "k", 1, "r").code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(keys_->Release("acct_1", bad, 1).code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(keys_->Acquire("acct_1", "k2", fp_a_, Duration::Millis(9)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(keys_->Acquire("acct_1", "k2", fp_a_, Duration::Seconds(3601)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(keys_->Complete("acct_1", "k", claim.attempt, std::string(101, 'r')).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckpointNow("k", claim.attempt, "").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckpointNow("k", claim.attempt, std::string(65, 'p')).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(env_.Dump(), before);
  // The limits themselves are accepted.
  EXPECT_EQ(Must(keys_->Acquire(max_name, max_name, fp_a_, kLease)).state, ClaimState::kClaimed);
  EXPECT_EQ(Must(keys_->Acquire("acct_1", " ~", fp_a_, Duration::Millis(10))).state,
            ClaimState::kClaimed);
  MustOk(keys_->Complete("acct_1", "k", claim.attempt, std::string(100, 'r')));
}

TEST_F(IdempotencyKeysTest, CorruptedRecordIsDataLoss) {
  const Claim claim = MustAcquire("k", fp_a_);
  MustOk(keys_->Complete("acct_1", "k", claim.attempt, "resp"));
  const std::string record_key = std::string("idem/acct_1\0k", 13);
  const std::string good = env_.Dump().at(record_key);
  ASSERT_TRUE(internal::DecodeRecord(good).ok());
  auto put_raw = [&](const std::string& value) {
    MustOk(RunInTransaction(*env_.store,
                            [&](Transaction& txn) { return txn.Put(record_key, value); }));
  };
  std::string flipped = good;
  flipped[20] = static_cast<char>(flipped[20] ^ 0x01);
  for (const std::string& bad :
       {flipped, good.substr(0, good.size() - 1), std::string("x"), std::string(), good + "z"}) {
    put_raw(bad);
    EXPECT_EQ(keys_->Acquire("acct_1", "k", fp_a_, kLease).status().code(), StatusCode::kDataLoss);
    EXPECT_EQ(keys_->Complete("acct_1", "k", claim.attempt, "resp").code(), StatusCode::kDataLoss);
  }
  // Values with a valid CRC but an impossible field are refused too: attempt 0, version 2,
  // state 9. (Offsets: version 0, state 1, fingerprint 2..33, attempt 34..41.)
  EXPECT_EQ(internal::EncodeRecord(Must(internal::DecodeRecord(good))), good);
  auto with_crc = [](std::string body) {
    const uint32_t crc = Crc32c({reinterpret_cast<const uint8_t*>(body.data()), body.size()});
    for (int i = 0; i < 4; ++i) body.push_back(static_cast<char>(crc >> (8 * i)));
    return body;
  };
  const std::string body = good.substr(0, good.size() - 4);
  ASSERT_EQ(with_crc(body), good);
  std::string attempt0 = body;
  for (int i = 34; i < 42; ++i) attempt0[i] = 0;
  std::string version2 = body;
  version2[0] = 2;
  std::string state9 = body;
  state9[1] = 9;
  for (const std::string& bad : {attempt0, version2, state9}) {
    put_raw(with_crc(bad));
    EXPECT_EQ(keys_->Acquire("acct_1", "k", fp_a_, kLease).status().code(), StatusCode::kDataLoss);
  }
}

TEST_F(IdempotencyKeysTest, TransactionFormsRollBackWithTheCallersTransaction) {
  // A claim made in a transaction the caller rolls back never happened.
  {
    std::unique_ptr<Transaction> txn = Must(env_.store->Begin());
    EXPECT_EQ(Must(keys_->Acquire(*txn, "acct_1", "k", fp_a_, kLease)).state, ClaimState::kClaimed);
    MustOk(txn->Put("orders/1", "created"));
    txn->Rollback();
  }
  EXPECT_TRUE(env_.Dump().empty());
  // The claim, the caller's writes and the completion commit together or not at all.
  const Claim claim = MustAcquire("k", fp_a_);
  {
    std::unique_ptr<Transaction> txn = Must(env_.store->Begin());
    MustOk(txn->Put("orders/1", "created"));
    MustOk(keys_->Checkpoint(*txn, "acct_1", "k", claim.attempt, "order_created", kLease));
    MustOk(keys_->Complete(*txn, "acct_1", "k", claim.attempt, "201"));
    txn->Rollback();
  }
  EXPECT_EQ(env_.Dump().count("orders/1"), 0u);
  EXPECT_EQ(MustAcquire("k", fp_a_).state, ClaimState::kInProgress);
  {
    std::unique_ptr<Transaction> txn = Must(env_.store->Begin());
    MustOk(txn->Put("orders/1", "created"));
    MustOk(keys_->Complete(*txn, "acct_1", "k", claim.attempt, "201"));
    MustOk(txn->Commit());
  }
  EXPECT_EQ(env_.Dump().at("orders/1"), "created");
  EXPECT_EQ(MustAcquire("k", fp_a_).response, "201");
}

TEST_F(IdempotencyKeysTest, ExpireDeletesInBatchesOnlyWhatIsPastRetention) {
  KeyOptions options;
  options.expire_batch_max = 3;
  options.retention = Duration::Seconds(100);
  Recreate(options);
  for (int i = 0; i < 7; ++i) {
    const std::string key = "done" + std::to_string(i);
    const Claim claim = MustAcquire(key, fp_a_);
    MustOk(keys_->Complete("acct_1", key, claim.attempt, "r"));
  }
  const Claim released = MustAcquire("released", fp_a_);
  MustOk(keys_->Release("acct_1", "released", released.attempt));
  MustAcquire("live", fp_a_);  // in progress: expires at lease + retention
  EXPECT_EQ(Must(keys_->Expire()), 0u);
  env_.clock.Advance(Duration::Seconds(100));  // exactly at retention: expired
  EXPECT_EQ(Must(keys_->Expire()), 3u);
  EXPECT_EQ(Must(keys_->Expire()), 3u);
  EXPECT_EQ(Must(keys_->Expire()), 2u);
  EXPECT_EQ(Must(keys_->Expire()), 0u);
  // Only the in-progress record and its index entry remain.
  EXPECT_EQ(env_.Dump().size(), 2u);
  EXPECT_EQ(MustAcquire("live", fp_a_).state, ClaimState::kClaimed);  // lease ran out: takeover
  EXPECT_EQ(MustAcquire("done0", fp_b_).attempt, 1u);                 // deleted: a new record
  env_.clock.Advance(Duration::Seconds(1000));
  EXPECT_EQ(Must(keys_->Expire()), 2u);
  EXPECT_TRUE(env_.Dump().empty());
}

TEST(RecordTest, OrderedTimeSortsLikeTime) {
  const int64_t samples[] = {INT64_MIN, -5, -1, 0, 1, 1'700'000'000'000'000'000, INT64_MAX};
  for (size_t i = 0; i + 1 < std::size(samples); ++i) {
    const std::string a = internal::OrderedTime(WallTime::FromNanos(samples[i]));
    const std::string b = internal::OrderedTime(WallTime::FromNanos(samples[i + 1]));
    EXPECT_LT(a, b);
    EXPECT_EQ(Must(internal::ParseOrderedTime(a)).nanos(), samples[i]);
  }
}

}  // namespace
}  // namespace faultline::idempotency
