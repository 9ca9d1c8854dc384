#include "test_postgres.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <memory>
#include <random>

namespace tether::test {
namespace {

constexpr const char* kBin = "/usr/lib/postgresql/15/bin/";

std::string random_password() {
  std::random_device device;
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string password;
  for (int i = 0; i < 24; ++i)
    password += kAlphabet[device() % (sizeof kAlphabet - 1)];
  return password;
}

std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

}  // namespace

TestPostgres::TestPostgres()
    : data_dir_(dir_.path() + "/data"),
      run_dir_(dir_.path() + "/run"),
      log_file_(dir_.path() + "/run/server.log"),
      password_(random_password()),
      password_file_(dir_.path() + "/password") {
  as_nobody_ = ::geteuid() == 0;
  // One copy for initdb (the server's owner reads it), one for clients.
  const std::string initdb_password_file = dir_.path() + "/initdb-password";
  for (const std::string& path : {password_file_, initdb_password_file}) {
    std::ofstream out(path);
    out << password_ << "\n";
    out.close();
    ::chmod(path.c_str(), 0600);
  }
  REQUIRE(::mkdir(data_dir_.c_str(), 0700) == 0);
  REQUIRE(::mkdir(run_dir_.c_str(), 0700) == 0);
  if (as_nobody_) {
    const passwd* nobody = ::getpwnam("nobody");
    REQUIRE(nobody != nullptr);
    // The directory stays ours and passable; the cluster's own is nobody's.
    REQUIRE(::chown(initdb_password_file.c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
    REQUIRE(::chown(data_dir_.c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
    REQUIRE(::chown(run_dir_.c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
  }
  auto [status, output] =
      shell_output(as_owner(std::string(kBin) + "initdb --no-sync --no-locale -E UTF8 -U tether" +
                            " -A scram-sha-256 --pwfile=" + quoted(initdb_password_file) + " -D " +
                            quoted(data_dir_)) +
                   " 2>&1");
  INFO(output);
  REQUIRE(status == 0);
  start();
  psql("CREATE DATABASE tether", "postgres");
}

TestPostgres::~TestPostgres() {
  // std::system, not shell_output: no Catch assertion here, as the shared
  // server of hub_database_args stops after the test run has ended.
  const std::string stop = as_owner(std::string(kBin) + "pg_ctl -D " + quoted(data_dir_) +
                                    " -m immediate -w -t 30 stop") +
                           " >/dev/null 2>&1";
  (void)std::system(stop.c_str());
}

std::string TestPostgres::as_owner(const std::string& command) const {
  // The server's working directory is its own, not the test's (which
  // nobody may not be allowed to enter).
  return "cd " + quoted(run_dir_) + " && " + (as_nobody_ ? "runuser -u nobody -- " : "") + command;
}

void TestPostgres::start() {
  std::string output;
  for (int attempt = 0; attempt < 5; ++attempt) {
    // Another process may take free_port()'s port before the server does:
    // then another one.
    if (port_ == 0 || attempt > 0) port_ = free_port();
    const std::string options = "-h 127.0.0.1 -p " + std::to_string(port_) + " -k " + run_dir_ +
                                " -c fsync=off -c max_connections=200";
    auto [status, out] =
        shell_output(as_owner(std::string(kBin) + "pg_ctl -D " + quoted(data_dir_) + " -l " +
                              quoted(log_file_) + " -w -t 60 -o " + quoted(options) + " start") +
                     " 2>&1");
    if (status == 0) return;
    output = out + shell_output("cat " + quoted(log_file_)).second;
  }
  INFO(output);
  FAIL("PostgreSQL did not start");
}

void TestPostgres::restart() {
  stop();
  start();
}

void TestPostgres::stop() {
  auto [status, output] = shell_output(
      as_owner(std::string(kBin) + "pg_ctl -D " + quoted(data_dir_) + " -m fast -w -t 60 stop") +
      " 2>&1");
  INFO(output);
  REQUIRE(status == 0);
}

std::string TestPostgres::url() const {
  return "postgresql://tether@127.0.0.1:" + std::to_string(port_) + "/tether";
}

std::string TestPostgres::psql(const std::string& sql, const std::string& database) const {
  auto [status, output] = try_psql(sql, database);
  INFO(sql);
  INFO(output);
  REQUIRE(status == 0);
  return output;
}

std::pair<int, std::string> TestPostgres::try_psql(const std::string& sql,
                                                   const std::string& database) const {
  return shell_output("PGPASSWORD=" + quoted(password_) + " " + kBin +
                      "psql -X -A -t -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p " +
                      std::to_string(port_) + " -U tether -d " + database + " -c " + quoted(sql) +
                      " 2>&1");
}

namespace {

// The shared server of TETHER_TEST_POSTGRES=1 runs and a database per data
// directory (hub_database_args).
struct SharedPostgres {
  std::unique_ptr<TestPostgres> server;
  std::map<std::string, std::string> databases;  // data directory -> database
};

bool hubs_on_postgres_forced = false;

SharedPostgres* shared_postgres() {
  const char* mode = std::getenv("TETHER_TEST_POSTGRES");
  if (!hubs_on_postgres_forced && (!mode || std::string(mode) != "1")) return nullptr;
  static SharedPostgres shared;  // for the whole run
  if (!shared.server) shared.server = std::make_unique<TestPostgres>();
  return &shared;
}

const std::string& database_of(SharedPostgres& shared, const std::string& data_dir) {
  auto [entry, made] =
      shared.databases.emplace(data_dir, "hub_" + std::to_string(shared.databases.size() + 1));
  if (made) shared.server->psql("CREATE DATABASE " + entry->second);
  return entry->second;
}

}  // namespace

HubsOnPostgres::HubsOnPostgres() {
  hubs_on_postgres_forced = true;
}
HubsOnPostgres::~HubsOnPostgres() {
  hubs_on_postgres_forced = false;
}

void HubsOnPostgres::restart_server() {
  SharedPostgres* shared = shared_postgres();
  REQUIRE(shared != nullptr);
  shared->server->restart();
}

std::vector<std::string> hub_database_args(const std::string& data_dir) {
  SharedPostgres* shared = shared_postgres();
  if (!shared) return {};
  return {"--database",
          "postgresql://tether@127.0.0.1:" + std::to_string(shared->server->port()) + "/" +
              database_of(*shared, data_dir),
          "--database-password-file", shared->server->password_file()};
}

std::pair<int, std::string> try_hub_sql(const std::string& data_dir, const std::string& sql) {
  if (SharedPostgres* shared = shared_postgres())
    return shared->server->try_psql(sql, database_of(*shared, data_dir));
  return shell_output("sqlite3 '" + data_dir + "/hub.db' \"" + sql + "\" 2>&1");
}

std::string hub_sql(const std::string& data_dir, const std::string& sql) {
  if (SharedPostgres* shared = shared_postgres())
    return shared->server->psql(sql, database_of(*shared, data_dir));
  auto [status, out] = shell_output("sqlite3 -readonly '" + data_dir + "/hub.db' \"" + sql + "\"");
  INFO(out);
  REQUIRE(status == 0);
  return out;
}

}  // namespace tether::test
