// tether-agent run's configuration: the file, flags, the environment, the
// token file's permissions, and the errors a person reads when one is wrong.
#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "agent/agent_config.hpp"

using namespace tether;
using namespace tether::agent;

namespace {

struct ConfigDir {
  std::string path;
  ConfigDir() {
    char pattern[] = "/tmp/tether-config-XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~ConfigDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    const std::string file = path + "/" + name;
    std::ofstream(file) << text;
    ::chmod(file.c_str(), mode);
    return file;
  }
};

// The environment is process-wide; each test that sets a variable restores it.
struct ScopedEnv {
  std::string name;
  explicit ScopedEnv(std::string variable, const std::string& value) : name(std::move(variable)) {
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name.c_str()); }
};

std::string error_of(const std::vector<std::string>& args) {
  auto config = load_agent_config(args);
  REQUIRE_FALSE(config.ok());
  return config.error().message;
}

}  // namespace

TEST_CASE("a config file sets every key; flags override it") {
  ConfigDir dir;
  const std::string token = dir.write("token", "secret-token\n");
  const std::string file = dir.write("agent.conf",
                                     "# an agent\n"
                                     "hub_url = http://127.0.0.1:7070\n"
                                     "agent = edge-1   # trailing comment\n"
                                     "token_file = " +
                                         token +
                                         "\n"
                                         "state_dir = " +
                                         dir.path +
                                         "/state\n"
                                         "max_concurrent_tasks = 2\n"
                                         "flush_interval_ms = 50\n"
                                         "chunk_bytes = 32768\n"
                                         "outbox_max_bytes = 2097152\n"
                                         "outbox_full_policy = block\n"
                                         "outbox_sync = full\n"
                                         "poll_wait_s = 5\n"
                                         "shutdown_grace_s = 3\n"
                                         "labels = role=web, region=eu\n"
                                         "\n"
                                         "log_level = debug\n");
  auto config = load_agent_config({"--config", file, "--chunk-bytes", "4096"});
  REQUIRE(config.ok());
  CHECK(config->hub_url.origin() == "http://127.0.0.1:7070");
  CHECK(config->agent == "edge-1");
  CHECK(config->token == "secret-token");
  CHECK(config->state_dir == dir.path + "/state");
  CHECK(config->max_concurrent_tasks == 2);
  CHECK(config->flush_interval_ms == 50);
  CHECK(config->chunk_bytes == 4096);  // the flag wins
  CHECK(config->outbox_max_bytes == 2097152);
  CHECK(config->outbox_full_policy == OutboxFullPolicy::kBlock);
  CHECK(config->outbox_sync_full);
  CHECK(config->poll_wait_s == 5);
  CHECK(config->shutdown_grace_s == 3);
  CHECK(config->log_level == core::LogLevel::kDebug);
  CHECK(config->labels == protocol::Labels{{"region", "eu"}, {"role", "web"}});
}

TEST_CASE("defaults are the documented ones") {
  ConfigDir dir;
  const std::string token = dir.write("token", "t");
  auto config = load_agent_config(
      {"--hub-url", "http://localhost:7070", "--agent", "a", "--token-file", token});
  REQUIRE(config.ok());
  CHECK(config->state_dir == "/var/lib/tether");
  CHECK(config->outbox_max_bytes == 256ull << 20);
  CHECK(config->outbox_full_policy == OutboxFullPolicy::kDropOldest);
  CHECK_FALSE(config->outbox_sync_full);
  CHECK(config->send_window_bytes == 8ull << 20);
  CHECK(config->keepalive_s == 15);  // a dead peer is found within 3 x 15 s
  CHECK(config->shutdown_grace_s == 30);
  CHECK(config->poll_wait_s == 30);
}

TEST_CASE("config errors name the file, the line, the key and the reason") {
  ConfigDir dir;
  const std::string token = dir.write("token", "t");
  const std::string head = "hub_url = http://127.0.0.1:1\nagent = a\ntoken_file = " + token + "\n";

  SECTION("an unknown key") {
    const std::string file = dir.write("c", head + "chunk_size = 10\n");
    CHECK(error_of({"--config", file}) == file + ":4: unknown key 'chunk_size'");
  }
  SECTION("a value that is not a number") {
    const std::string file = dir.write("c", head + "poll_wait_s = soon\n");
    CHECK(error_of({"--config", file}) ==
          file + ":4: poll_wait_s: 'soon' is not a non-negative integer");
  }
  SECTION("a number out of range") {
    const std::string file = dir.write("c", "\n" + head + "poll_wait_s = 600\n");
    CHECK(error_of({"--config", file}) == file + ":5: poll_wait_s: must be from 1 to 60");
  }
  SECTION("a bad enumeration") {
    const std::string file = dir.write("c", head + "outbox_full_policy = drop-newest\n");
    CHECK(error_of({"--config", file}) ==
          file + ":4: outbox_full_policy: expected drop-oldest or block");
  }
  SECTION("labels that break the label rule") {
    const std::string file = dir.write("c", head + "labels = role=web, region=eu/west\n");
    CHECK(error_of({"--config", file}) ==
          file +
              ":4: labels: label 'region=eu/west': the value must be 0 to 63 of A-Z a-z 0-9 "
              ". _ -");
  }
  SECTION("a line without =") {
    const std::string file = dir.write("c", head + "verbose\n");
    CHECK(error_of({"--config", file}) == file + ":4: expected key = value, got 'verbose'");
  }
  SECTION("a bad flag value names the flag") {
    CHECK(error_of({"--config", dir.write("c", head), "--outbox-sync", "sometimes"}) ==
          "--outbox-sync: expected normal or full");
  }
  SECTION("an unknown flag") {
    CHECK(error_of({"--config", dir.write("c", head), "--colour", "on"}) ==
          "unknown option --colour");
  }
  SECTION("a missing config file") {
    CHECK(error_of({"--config", dir.path + "/nope"}) ==
          "cannot read config file '" + dir.path + "/nope'");
  }
  SECTION("no hub") {
    CHECK(error_of({"--agent", "a", "--token-file", token}) ==
          "hub_url is not set (or --hub-url): the agent does not know its hub");
  }
  SECTION("the packaged config, before anyone edits it, names the file and what to set") {
    const std::string packaged = std::string(TETHER_SOURCE_DIR) + "/packaging/agent.conf";
    auto config = load_agent_config({"--config", packaged});
    REQUIRE_FALSE(config.ok());
    CHECK(config.error().code == "not_configured");
    CHECK(config.error().message ==
          "hub_url is not set in " + packaged + " (or --hub-url): the agent does not know its hub");
    // ...and every key it mentions is one the agent knows.
    auto settings = read_agent_settings({"--config", packaged});
    REQUIRE(settings.ok());
    CHECK(settings->state_dir == "/var/lib/tether");
  }
  SECTION("metrics_listen must be an address and port") {
    CHECK(error_of({"--config", dir.write("c", head), "--metrics-listen", "9465"}) ==
          "--metrics-listen: expected address:port, e.g. 127.0.0.1:9465");
  }
}

TEST_CASE("the token file must be private, and may come from TETHER_AGENT_TOKEN_FILE") {
  ConfigDir dir;
  const std::vector<std::string> base = {"--hub-url", "http://127.0.0.1:1", "--agent", "a"};

  SECTION("group-readable is refused with the fix") {
    const std::string token = dir.write("token", "t", 0640);
    auto args = base;
    args.insert(args.end(), {"--token-file", token});
    const std::string message = error_of(args);
    CHECK(message.find("has mode 0640") != std::string::npos);
    CHECK(message.find("chmod 600 '" + token + "'") != std::string::npos);
    CHECK(message.find("secret") == std::string::npos);
  }
  SECTION("world-readable is refused") {
    auto args = base;
    args.insert(args.end(), {"--token-file", dir.write("token", "t", 0604)});
    CHECK(error_of(args).find("has mode 0604") != std::string::npos);
  }
  SECTION("the environment names the file") {
    ScopedEnv env("TETHER_AGENT_TOKEN_FILE", dir.write("token", "from-env\n"));
    auto config = load_agent_config(base);
    REQUIRE(config.ok());
    CHECK(config->token == "from-env");
    CHECK(config->origin_of("token_file") == "environment TETHER_AGENT_TOKEN_FILE");
  }
  SECTION("no token at all") {
    CHECK(error_of(base) == "no token: set token_file, --token-file or TETHER_AGENT_TOKEN_FILE");
    CHECK(load_agent_config(base).error().code == "not_configured");
  }
  SECTION("the operator CLI's TETHER_TOKEN_FILE is never the agent's token") {
    ScopedEnv env("TETHER_TOKEN_FILE", dir.write("admin.token", "operator\n"));
    CHECK(load_agent_config(base).error().code == "not_configured");
    auto args = base;
    args.insert(args.end(), {"--token-file", dir.write("token", "agent\n")});
    auto config = load_agent_config(args);
    REQUIRE(config.ok());
    CHECK(config->token == "agent");
    CHECK(config->ignored_variables == std::vector<std::string>{"TETHER_TOKEN_FILE"});
  }
}

TEST_CASE("each setting says where it came from: file and line, flag, environment, default") {
  ConfigDir dir;
  const std::string token = dir.write("token", "t");
  const std::string file =
      dir.write("agent.conf", "# comment\nhub_url = http://127.0.0.1:1\nagent = a\n");
  ScopedEnv env("TETHER_AGENT_TOKEN_FILE", token);
  auto config = load_agent_config({"--config", file, "--agent", "b", "--chunk-bytes", "4096"});
  REQUIRE(config.ok());
  CHECK(config->origin_of("hub_url") == file + ":2");
  CHECK(config->origin_of("agent") == "--agent");  // the flag wins over line 3
  CHECK(config->agent == "b");
  CHECK(config->origin_of("chunk_bytes") == "--chunk-bytes");
  CHECK(config->origin_of("token_file") == "environment TETHER_AGENT_TOKEN_FILE");
  CHECK(config->origin_of("state_dir") == "default");
}

TEST_CASE("plain http to another host needs insecure = true") {
  ConfigDir dir;
  const std::string token = dir.write("token", "t");
  const std::vector<std::string> base = {
      "--hub-url", "http://hub.example:7070", "--agent", "a", "--token-file", token};
  CHECK(error_of(base).find("plain http goes only to a loopback address") != std::string::npos);
  // A name that looks like a loopback address is still a name (it does not
  // resolve here; wherever it did, the token would follow).
  const std::string lookalike = error_of({"--hub-url", "http://127.0.0.1.example.invalid:7070",
                                          "--agent", "a", "--token-file", token});
  CHECK(lookalike.find("plain http goes only to a loopback address") != std::string::npos);
  CHECK(lookalike.find("127.0.0.1.example.invalid") != std::string::npos);
  CHECK(load_agent_config(
            {"--hub-url", "http://127.0.0.2:7070", "--agent", "a", "--token-file", token})
            .ok());
  CHECK(load_agent_config({"--hub-url", "http://[::1]:7070", "--agent", "a", "--token-file", token})
            .ok());
  auto args = base;
  args.insert(args.end(), {"--insecure", "true"});
  CHECK(load_agent_config(args).ok());
  CHECK(
      load_agent_config({"--hub-url", "https://hub.example", "--agent", "a", "--token-file", token})
          .ok());
}

TEST_CASE("tether-agent run reports a bad config on stderr and exits 2, before touching state") {
  ConfigDir dir;
  const std::string token = dir.write("token", "t");
  const std::string file =
      dir.write("agent.conf", "hub_url = http://127.0.0.1:1\nagent = a\ntoken_file = " + token +
                                  "\nstate_dir = " + dir.path + "/state\nchunk_bytes = 12\n");
  const char* agent = std::getenv("TETHER_AGENT");
  REQUIRE(agent != nullptr);
  const std::string command = std::string("'") + agent + "' run --config '" + file + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buffer[1024];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
    out.append(buffer, n);
  const int status = ::pclose(pipe);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 2);
  CHECK(out == "tether-agent: " + file + ":5: chunk_bytes: must be from 1024 to 131072\n");
  CHECK_FALSE(std::filesystem::exists(dir.path + "/state"));
}
