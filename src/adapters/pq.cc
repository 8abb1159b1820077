#include "src/adapters/pq.h"

#include <cstring>
#include <string>

#include "src/adapters/store_common.h"

namespace faultline::pq {
namespace {

Status Classify(std::string_view sqlstate, bool connection_lost, const std::string& message) {
  auto is = [sqlstate](std::string_view code) { return sqlstate == code; };
  auto cls = [sqlstate](std::string_view prefix) { return sqlstate.substr(0, 2) == prefix; };
  if (is("40001") || is("40P01") || is("55P03")) return AbortedError(message);
  if (cls("08") || is("57P01") || is("57P02") || is("57P03")) return UnavailableError(message);
  // The server sends a SQLSTATE with every error; none means libpq itself failed: the connection.
  if (sqlstate.empty()) return UnavailableError(message);
  if (is("57014")) return DeadlineExceededError(message);
  if (cls("53")) return ResourceExhaustedError(message);
  if (is("54000")) return InvalidArgumentError(message);
  if (cls("42") || cls("23") || is("0A000")) return FailedPreconditionError(message);
  return connection_lost ? UnavailableError(message) : InternalError(message);
}

}  // namespace

Status ErrorStatus(PGconn* conn, const PGresult* result, std::string_view what) {
  const char* sqlstate = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const char* text = result != nullptr ? PQresultErrorMessage(result) : "";
  if (text == nullptr || *text == '\0') text = conn != nullptr ? PQerrorMessage(conn) : "";
  std::string message = "postgres: ";
  message.append(what);
  message.append(": ");
  if (sqlstate != nullptr) {
    message.append(sqlstate);
    message.push_back(' ');
  }
  message.append(internal::OneLine(text != nullptr && *text != '\0' ? text : "unknown error"));
  const bool lost = conn == nullptr || PQstatus(conn) != CONNECTION_OK;
  return Classify(sqlstate != nullptr ? sqlstate : "", lost, message);
}

Params& Params::Int8(int64_t value) {
  FL_ASSERT(count < 3);
  auto v = static_cast<uint64_t>(value);
  for (int i = 7; i >= 0; --i) {
    int8_[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  values[static_cast<size_t>(count)] = int8_.data();
  lengths[static_cast<size_t>(count)] = 8;
  ++count;
  return *this;
}

Result<std::unique_ptr<Connection>> Connection::Connect(const std::string& conninfo,
                                                        uint32_t connect_timeout_s) {
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &parse_error);
  if (parsed == nullptr) {
    std::string message = "postgres: bad conninfo: ";
    message.append(internal::OneLine(parse_error != nullptr ? parse_error : "unparsable"));
    PQfreemem(parse_error);
    return InvalidArgumentError(message);
  }
  PQconninfoFree(parsed);
  const std::string timeout = std::to_string(connect_timeout_s);
  // expand_dbname = 1: `dbname` carries the whole conninfo; placed last, its own settings win
  // over these defaults.
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {timeout.c_str(), "faultline", conninfo.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, 1);
  if (conn == nullptr) return ResourceExhaustedError("postgres: out of memory connecting");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = "postgres: cannot connect: ";
    message.append(internal::OneLine(PQerrorMessage(conn)));
    PQfinish(conn);
    return UnavailableError(message);
  }
  return std::unique_ptr<Connection>(new Connection(conn));
}

Connection::~Connection() { PQfinish(conn_); }

Result<ResultPtr> Connection::Check(PGresult* raw, std::string_view what) {
  ResultPtr result(raw);
  const ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  Status error = ErrorStatus(conn_, result.get(), what);
  if (error.code() == StatusCode::kUnavailable) broken_ = true;
  return error;
}

Result<ResultPtr> Connection::Exec(const std::string& sql) {
  return Check(PQexec(conn_, sql.c_str()), sql);
}

Result<ResultPtr> Connection::ExecParams(const std::string& sql, const Params& params,
                                         const Oid* types) {
  return Check(PQexecParams(conn_, sql.c_str(), params.count, types, params.values.data(),
                            params.lengths.data(), params.formats.data(), 1),
               "query");
}

Status Connection::Prepare(const char* name, const std::string& sql, int count, const Oid* types) {
  return Check(PQprepare(conn_, name, sql.c_str(), count, types), "prepare").status();
}

Result<ResultPtr> Connection::ExecPrepared(const char* name, const Params& params) {
  return Check(PQexecPrepared(conn_, name, params.count, params.values.data(),
                              params.lengths.data(), params.formats.data(), 1),
               name);
}

}  // namespace faultline::pq
