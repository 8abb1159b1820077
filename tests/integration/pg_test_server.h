// Test helpers around a real PostgreSQL server (runtime::PgServer, faultline/runtime/pg_server.h,
// started as a direct child of the test process).
//
// SharedPgConninfo() is what most tests use: the conninfo in FAULTLINE_TEST_PG when set (./run
// test starts one server for the whole ctest run and exports it), else one server started for
// this process on first use. Tests sharing a server isolate themselves with UniqueTableName().
// Tests that kill or restart the server always Start() their own PgTestServer.
//
// Every failure to get a server is a Status with the reason (and the tail of the server's log):
// tests fail on it, they never skip.
#pragma once

#include <cstdint>
#include <string>

#include "faultline/core/status.h"
#include "faultline/runtime/pg_server.h"

namespace faultline::testing {

using PgTestServerOptions = runtime::PgServerOptions;
using PgTestServer = runtime::PgServer;

// See the file comment. The error says why no server could be had.
Result<std::string> SharedPgConninfo();

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed).
Result<uint16_t> FreeLoopbackPort();

// A table name no other test process uses: "t_<pid>_<counter>".
std::string UniqueTableName();

}  // namespace faultline::testing
