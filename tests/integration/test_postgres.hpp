// A private PostgreSQL server for one test: Debian's postgresql-15 binaries,
// a cluster made with initdb in a temporary directory, listening on
// 127.0.0.1 (a free port) and a Unix socket in that directory, owned by an
// unprivileged user (the server refuses to run as root: when the test runs
// as root, the cluster belongs to `nobody`). Password authentication
// (scram-sha-256) for the user `tether`, as a production server would ask;
// the password is in password_file() (0600). Stopped and removed on
// destruction.
//
// Every wait is pg_ctl's own (-w: it returns once the server accepts
// connections or has stopped), bounded by its -t timeout.
#pragma once

#include <string>

#include "harness.hpp"

namespace tether::test {

class TestPostgres {
 public:
  // initdb and start; REQUIREs both to succeed (the log is in the message).
  TestPostgres();
  ~TestPostgres();
  TestPostgres(const TestPostgres&) = delete;
  TestPostgres& operator=(const TestPostgres&) = delete;

  // postgresql://tether@127.0.0.1:PORT/tether (no password: see password_file()).
  std::string url() const;
  // A file (0600) holding the password of `tether`, alone on its line.
  const std::string& password_file() const { return password_file_; }
  const std::string& password() const { return password_; }
  int port() const { return port_; }

  // pg_ctl stop -m fast, then start again on the same port and data.
  void restart();
  // pg_ctl stop -m fast, and start again (same port and data): between the
  // two the server is down.
  void stop();
  void start_again() { start(); }
  // Runs `sql` with psql as the superuser `tether` in `database`; returns
  // its output (unaligned, tuples only). REQUIREs success.
  std::string psql(const std::string& sql, const std::string& database = "tether") const;
  // The same without the REQUIRE: psql's exit status and output.
  std::pair<int, std::string> try_psql(const std::string& sql,
                                       const std::string& database = "tether") const;

 private:
  // `command` as the cluster's owner (through runuser when we are root).
  std::string as_owner(const std::string& command) const;
  void start();

  TempDir dir_;
  std::string data_dir_;
  std::string run_dir_;  // the server's socket, log and working directory
  std::string log_file_;
  std::string password_;
  std::string password_file_;
  bool as_nobody_ = false;
  int port_ = 0;
};

}  // namespace tether::test
