// A thin RAII layer over libpq (internal to the PostgreSQL adapter): owned connections and
// results, binary-format prepared statements, and SQLSTATE -> Status mapping.
#pragma once

#include <libpq-fe.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "faultline/core/status.h"

namespace faultline::pq {

struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// PostgreSQL type OIDs used by binary parameters.
inline constexpr Oid kByteaOid = 17;
inline constexpr Oid kInt8Oid = 20;

// Maps a failed result (or a failed connection, when `result` is null) to a Status:
//   40001 serialization_failure, 40P01 deadlock_detected, 55P03 lock_not_available -> kAborted
//   class 08 (connection), 57P01..57P03 (shutdown), no SQLSTATE at all (libpq's own failure:
//   the connection broke)                                              -> kUnavailable
//   42P01 undefined_table, 42703 undefined_column, 42804 datatype_mismatch, 0A000,
//   other class 42 and 23 (constraint)                                 -> kFailedPrecondition
//   57014 query_canceled (statement_timeout)                           -> kDeadlineExceeded
//   class 53 (insufficient resources)                                  -> kResourceExhausted
//   54000 program_limit_exceeded                                       -> kInvalidArgument
//   anything else                                                      -> kInternal
// The message is "postgres: <what>: <SQLSTATE> <libpq's message on one line>".
Status ErrorStatus(PGconn* conn, const PGresult* result, std::string_view what);

// Up to three binary parameters; values must outlive the call.
struct Params {
  Params() = default;
  Params(const Params&) = delete;  // values may point into int8_
  Params& operator=(const Params&) = delete;

  std::array<const char*, 3> values{};
  std::array<int, 3> lengths{};
  std::array<int, 3> formats{1, 1, 1};
  int count = 0;

  // A zero-length value needs a non-null pointer, or it is SQL NULL.
  Params& Bytes(std::string_view bytes) {
    FL_ASSERT(count < 3);
    values[static_cast<size_t>(count)] = bytes.data() != nullptr ? bytes.data() : "";
    lengths[static_cast<size_t>(count)] = static_cast<int>(bytes.size());
    ++count;
    return *this;
  }
  // int8 in network byte order (binary format).
  Params& Int8(int64_t value);

 private:
  std::array<char, 8> int8_{};
};

class Connection {
 public:
  // Connects with `conninfo` (keyword=value or a postgresql:// URI). kUnavailable with libpq's
  // message on one line when the server is unreachable or refuses; kInvalidArgument when libpq
  // cannot parse `conninfo`.
  static Result<std::unique_ptr<Connection>> Connect(const std::string& conninfo,
                                                     uint32_t connect_timeout_s);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // A statement without parameters (BEGIN, COMMIT, SET, DDL). Text results.
  Result<ResultPtr> Exec(const std::string& sql);
  // A statement with parameters and binary results, not prepared.
  Result<ResultPtr> ExecParams(const std::string& sql, const Params& params,
                               const Oid* types);
  Status Prepare(const char* name, const std::string& sql, int count, const Oid* types);
  // Runs a prepared statement with binary parameters and binary results.
  Result<ResultPtr> ExecPrepared(const char* name, const Params& params);

  // False once libpq has seen the connection fail, or a call failed for want of a connection
  // (libpq does not always mark the connection bad when a send fails).
  bool ok() const { return !broken_ && PQstatus(conn_) == CONNECTION_OK; }
  // PQTRANS_IDLE, PQTRANS_INTRANS, PQTRANS_INERROR, ...
  PGTransactionStatusType transaction_status() const { return PQtransactionStatus(conn_); }
  PGconn* raw() const { return conn_; }

 private:
  explicit Connection(PGconn* conn) : conn_(conn) {}
  Result<ResultPtr> Check(PGresult* result, std::string_view what);

  PGconn* conn_;
  bool broken_ = false;
};

}  // namespace faultline::pq
