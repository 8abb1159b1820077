// OpenStore(uri): the two schemes work end to end; everything else is one clear kInvalidArgument.
#include "faultline/adapters/open_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/integration/pg_test_server.h"

namespace faultline {
namespace {

void ExpectInvalid(const std::string& uri) {
  Result<std::unique_ptr<LocalStore>> store = OpenStore(uri);
  ASSERT_FALSE(store.ok()) << uri;
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument) << store.status().ToString();
  EXPECT_EQ(std::string(store.status().message()).find('\n'), std::string::npos);
}

TEST(OpenStoreTest, BadUrisAreInvalidArgument) {
  ExpectInvalid("");
  ExpectInvalid("mysql://localhost/db");
  ExpectInvalid("sqlite:");
  ExpectInvalid("sqlite:/tmp/x.db?synchronous=sometimes");
  ExpectInvalid("sqlite:/tmp/x.db?cache=shared");
  ExpectInvalid("postgresql://[::1");                 // libpq cannot parse it
  ExpectInvalid("postgresql://localhost/db?bogus=1");  // unknown libpq parameter
  ExpectInvalid("SQLITE:/tmp/x.db");
}

TEST(OpenStoreTest, SqliteUriOpensAWorkingStore) {
  char pattern[] = "/tmp/flopen-XXXXXX";
  ASSERT_NE(mkdtemp(pattern), nullptr);
  const std::string path = std::string(pattern) + "/s.db";
  {
    Result<std::unique_ptr<LocalStore>> store = OpenStore("sqlite:" + path + "?synchronous=normal");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE(RunInTransaction(**store, [](Transaction& txn) {
                  return txn.Put("k", "v");
                }).ok());
  }
  Result<std::unique_ptr<LocalStore>> again = OpenStore("sqlite:" + path);
  ASSERT_TRUE(again.ok());
  std::unique_ptr<Transaction> txn = std::move((*again)->Begin()).value();
  EXPECT_EQ(txn->Get("k").value(), "v");
  txn->Rollback();
  again->reset();
  std::filesystem::remove_all(pattern);
}

TEST(OpenStoreTest, PostgresUriOpensAWorkingStore) {
  Result<std::string> conninfo = testing::SharedPgConninfo();
  ASSERT_TRUE(conninfo.ok()) << conninfo.status().ToString();
  // The shared server is reached through a unix socket directory: host=<dir> in URI form.
  std::string uri = "postgresql://postgres@/postgres";
  const std::string& c = *conninfo;
  if (c.rfind("postgres", 0) == 0) {
    uri = c;
  } else {
    const size_t host = c.find("host=");
    const size_t end = c.find(' ', host);
    ASSERT_NE(host, std::string::npos);
    uri += "?host=" + c.substr(host + 5, end - host - 5);
    const size_t port = c.find("port=");
    if (port != std::string::npos) uri += "&port=" + c.substr(port + 5, c.find(' ', port) - port - 5);
  }
  OpenStoreOptions options;
  options.table = testing::UniqueTableName();
  Result<std::unique_ptr<LocalStore>> store = OpenStore(uri, options);
  ASSERT_TRUE(store.ok()) << uri << ": " << store.status().ToString();
  ASSERT_TRUE(RunInTransaction(**store, [](Transaction& txn) -> Status {
                FL_ASSIGN_OR_RETURN(bool inserted, txn.InsertIfAbsent("k", "v"));
                return inserted ? Status::Ok() : InternalError("not inserted");
              }).ok());
}

TEST(OpenStoreTest, UnreachablePostgresIsUnavailableOnOneLine) {
  Result<std::unique_ptr<LocalStore>> store =
      OpenStore("postgresql://postgres@/postgres?host=/nonexistent-faultline-dir&port=1");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
  EXPECT_EQ(std::string(store.status().message()).find('\n'), std::string::npos);
  EXPECT_NE(std::string(store.status().message()).find("nonexistent-faultline-dir"),
            std::string::npos)
      << "libpq's own message is kept: " << store.status().ToString();
}

}  // namespace
}  // namespace faultline
