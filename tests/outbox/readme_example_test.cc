// The README's "Outbox and sagas in your own service" outbox example, compiled and run as a test so
// it can never go stale. The text between the markers is the README snippet. (The markers are
// named `proposed-readme-...` until the section is in README.md; rename them to
// `readme-outbox-example` then, so tests/readme_snippets_test.sh checks the README shows this code
// verbatim.)
#include <gtest/gtest.h>

#include <string>

#include "tests/integration/idempotency_real_util.h"

// [proposed-readme-outbox-example]
#include "faultline/adapters/sqlite_store.h"
#include "faultline/adapters/system_clock.h"
#include "faultline/idempotency/inbox.h"
#include "faultline/outbox/outbox.h"
#include "faultline/outbox/relay.h"
#include "faultline/outbox/sqlite_queue.h"

using namespace faultline;
using namespace faultline::outbox;

// The order service: the order row and its event commit in one transaction, or neither does.
Status PlaceOrder(LocalStore& shop, Outbox& outbox, const std::string& order_id) {
  return RunInTransaction(shop, [&](Transaction& txn) -> Status {
    FL_RETURN_IF_ERROR(txn.Put("order/" + order_id, "placed"));
    Message event{.id = "order-" + order_id + "-placed",  // broker message id = inbox key
                  .subject = "orders.placed",
                  .key = "order-" + order_id,  // events of one key are delivered in order
                  .payload = R"({"total_cents":1999})"};
    return outbox.Append(txn, event).status();
  });
}

// The relay (one per key partition; in production run by the fenced leader, see TokenSource):
// publishes committed events in order, then deletes them. A crash in between republishes them,
// and the broker and the inbox drop the duplicates. A broker that is down: the error, rows kept.
Status RelayAll(Relay& relay, Publisher& publisher) {
  while (true) {
    FL_ASSIGN_OR_RETURN(size_t published, relay.RunOnce(publisher));
    if (published == 0) return Status::Ok();
  }
}

// The billing service: each event's effects and its inbox record commit together, then the ack.
Status BillOnce(Consumer& consumer, idempotency::Inbox& inbox) {
  FL_ASSIGN_OR_RETURN(std::vector<Delivery> deliveries, consumer.Fetch(100, Duration::Millis(50)));
  for (const Delivery& d : deliveries) {
    Result<bool> applied = inbox.Process(d.message.id, [&](Transaction& txn) {
      return txn.Put("invoice/" + d.message.key, d.message.payload);
    });
    if (!applied.ok()) return applied.status();  // not acked: redelivered after ack-wait
    FL_RETURN_IF_ERROR(consumer.Ack(d));         // a duplicate (applied == false) is acked too
  }
  return Status::Ok();
}
// [proposed-readme-outbox-example]

namespace {

TEST(OutboxReadmeExample, OrderEventReachesBillingOnce) {
  faultline::testing::TempDir dir;
  auto shop = SqliteStore::Open({.path = dir.path() + "/shop.db"}).value();
  auto billing = SqliteStore::Open({.path = dir.path() + "/billing.db"}).value();
  auto queue = SqliteQueue::Open({.path = dir.path() + "/queue.db"}).value();
  auto outbox = Outbox::Create(*shop).value();
  auto relay = Relay::Create(*shop).value();
  auto publisher = queue->NewPublisher().value();
  auto consumer = queue->NewConsumer("billing", "orders.").value();
  auto inbox = idempotency::Inbox::Create(*billing, SystemClock::Default(), "billing").value();

  ASSERT_TRUE(PlaceOrder(*shop, *outbox, "42").ok());
  ASSERT_TRUE(PlaceOrder(*shop, *outbox, "43").ok());
  ASSERT_TRUE(RelayAll(*relay, *publisher).ok());
  EXPECT_EQ(relay->stats().marked, 2u);
  ASSERT_TRUE(BillOnce(*consumer, *inbox).ok());

  // The same event published again (a relay that crashed before deleting it): billed once.
  ASSERT_TRUE(publisher
                  ->Publish(std::vector<Message>{Message{"order-42-placed", "orders.placed",
                                                         "order-42", R"({"total_cents":1999})"}})
                  .ok());
  ASSERT_TRUE(BillOnce(*consumer, *inbox).ok());
  auto txn = billing->Begin().value();
  std::vector<KeyValue> invoices = txn->Scan("invoice/", "invoice0", 10).value();
  txn->Rollback();
  ASSERT_EQ(invoices.size(), 2u);
  EXPECT_EQ(invoices[0].key, "invoice/order-42");
  EXPECT_EQ(invoices[0].value, R"({"total_cents":1999})");
  EXPECT_EQ(invoices[1].key, "invoice/order-43");
  // Each event applied once: the republished one found its inbox record.
  auto again = inbox->Process("order-42-placed", [](Transaction&) { return Status::Ok(); });
  EXPECT_FALSE(again.value());
}

}  // namespace
