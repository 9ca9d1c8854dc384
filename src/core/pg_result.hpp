// PgResult: the rows of one PostgreSQL statement (libpq's PGresult, owned).
//
// Values arrive in libpq's text format (PQexecParams with resultFormat 0):
// integers as decimal text, bytea as "\x" and hex digits (PostgreSQL's
// bytea_output = hex, its default since 9.0; docs: "Binary Data Types").
// Rows and columns count from 0, as in libpq.
//
// Invariants: a PgResult always holds a result whose status is
// PGRES_COMMAND_OK or PGRES_TUPLES_OK (PgConnection turns every other status
// into an Error). Reading a column as a type it does not hold, or outside
// rows() x columns(), is a programmer error: std::logic_error.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace tether::core {

class PgResult {
 public:
  explicit PgResult(PGresult* result) : result_(result) {}

  int rows() const { return PQntuples(result_.get()); }
  int columns() const { return PQnfields(result_.get()); }
  // Rows an INSERT, UPDATE or DELETE changed (PQcmdTuples); 0 for others.
  int64_t changed_rows() const;

  bool is_null(int row, int column) const;
  // The value as text; empty for NULL.
  std::string_view text(int row, int column) const;
  // An integer column (smallint, integer, bigint); 0 for NULL.
  int64_t int64(int row, int column) const;
  // A bytea column, decoded from the hex format; empty for NULL.
  std::string bytes(int row, int column) const;

 private:
  void check(int row, int column) const;
  struct Clear {
    void operator()(PGresult* result) const { PQclear(result); }
  };
  std::unique_ptr<PGresult, Clear> result_;
};

}  // namespace tether::core
