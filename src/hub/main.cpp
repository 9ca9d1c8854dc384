// tether-hub: the reference control plane.
#include <signal.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "core/run.hpp"
#include "core/service_notifier.hpp"
#include "core/signal_set.hpp"
#include "hub/hub.hpp"
#include "hub/tokens.hpp"
#include "protocol/wire_integer.hpp"

namespace {

using namespace tether;

constexpr const char* kUsage =
    "usage: tether-hub COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  serve --data-dir DIR [--listen ADDR:PORT] [--tls-cert FILE --tls-key FILE]\n"
    "        [--insecure-listen] [--lease-s N] [--sync normal|full] [--log-level LEVEL]\n"
    "        [--metrics-listen ADDR:PORT] [--max-event-streams N] [--trusted-proxy ADDR]...\n"
    "        [--max-connections N] [--max-connections-per-address N] [--request-timeout-s N]\n"
    "      run the hub (default --listen 127.0.0.1:7070)\n"
    "  agent add NAME --data-dir DIR      register an agent; prints its token once\n"
    "  agent rotate NAME --data-dir DIR   replace an agent's token; prints the new one\n"
    "  token admin --data-dir DIR         make an operator token; prints it once\n"
    "  --version                          print the version\n"
    "\n"
    "The agent and token commands work while the hub is running.\n";

int usage_error(const std::string& message) {
  std::fprintf(stderr, "tether-hub: %s\n\n%s", message.c_str(), kUsage);
  return 2;
}

struct Flags {
  std::vector<std::string> positional;
  hub::HubOptions options;
  std::string log_level;
};

Result<Flags> parse_flags(const std::vector<std::string>& args) {
  Flags flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&](const char* name) -> Result<std::string> {
      if (i + 1 >= args.size()) return make_error("usage", std::string(name) + " needs a value");
      return args[++i];
    };
    if (arg == "--insecure-listen") {
      flags.options.insecure_listen = true;
    } else if (arg == "--data-dir" || arg == "--listen" || arg == "--tls-cert" ||
               arg == "--tls-key" || arg == "--lease-s" || arg == "--sync" ||
               arg == "--log-level" || arg == "--metrics-listen" || arg == "--max-event-streams" ||
               arg == "--trusted-proxy" || arg == "--max-connections" ||
               arg == "--max-connections-per-address" || arg == "--request-timeout-s") {
      auto v = value(arg.c_str());
      if (!v) return v.error();
      if (arg == "--data-dir") flags.options.data_dir = *v;
      if (arg == "--listen") flags.options.listen = *v;
      if (arg == "--tls-cert") flags.options.tls_certificate_file = *v;
      if (arg == "--tls-key") flags.options.tls_private_key_file = *v;
      if (arg == "--log-level") flags.log_level = *v;
      if (arg == "--metrics-listen") flags.options.metrics_listen = *v;
      if (arg == "--trusted-proxy") {
        if (hub::AuthThrottle::canonical_address(*v).empty()) {
          return make_error(
              "usage",
              "--trusted-proxy: expected an IP address (e.g. 127.0.0.1), got '" + *v + "'");
        }
        flags.options.trusted_proxies.push_back(*v);
      }
      if (arg == "--sync") {
        if (*v != "normal" && *v != "full")
          return make_error("usage", "--sync: expected normal or full");
        flags.options.sync = *v == "full" ? hub::SyncMode::kFull : hub::SyncMode::kNormal;
      }
      auto count = [&](uint64_t low, uint64_t high) -> Result<uint64_t> {
        auto parsed = protocol::parse_wire_integer(*v, high);
        if (!parsed || *parsed < low) {
          return make_error("usage", arg + ": expected " + std::to_string(low) + " to " +
                                         std::to_string(high) + ", got '" + *v + "'");
        }
        return *parsed;
      };
      if (arg == "--max-connections") {
        auto n = count(1, 10'000'000);
        if (!n) return n.error();
        flags.options.max_connections = *n;
      }
      if (arg == "--max-connections-per-address") {
        auto n = count(1, 10'000'000);
        if (!n) return n.error();
        flags.options.max_connections_per_address = *n;
      }
      if (arg == "--request-timeout-s") {
        auto n = count(1, 3600);
        if (!n) return n.error();
        flags.options.request_timeout_s = static_cast<unsigned int>(*n);
      }
      if (arg == "--max-event-streams") {
        size_t streams = 0;
        const auto [end, error] = std::from_chars(v->data(), v->data() + v->size(), streams);
        if (error != std::errc() || end != v->data() + v->size() || streams < 1 ||
            streams > 100000) {
          return make_error("usage", "--max-event-streams: expected 1 to 100000");
        }
        flags.options.max_event_streams = streams;
      }
      if (arg == "--lease-s") {
        try {
          flags.options.lease_s = std::stoll(*v);
        } catch (const std::exception&) {
          return make_error("usage", "--lease-s: expected seconds");
        }
        if (flags.options.lease_s < 1 || flags.options.lease_s > 86400) {
          return make_error("usage", "--lease-s: expected 1 to 86400 seconds");
        }
      }
    } else if (arg.rfind("--", 0) == 0) {
      return make_error("usage", "unknown option " + arg);
    } else {
      flags.positional.push_back(arg);
    }
  }
  return flags;
}

core::Task<void> serve(core::Loop& loop, hub::HubOptions options, int& status) {
  core::SignalSet signals(loop, {SIGTERM, SIGINT});
  core::ServiceNotifier systemd(loop);
  // Every agent holds two connections: the soft limit of open files (1024
  // by default outside systemd's LimitNOFILE=) would cap the fleet at a few
  // hundred. Raised before the server sizes its tables from it.
  const auto [before, after] = core::raise_open_files_limit();
  core::log_info("hub", "open files limit " + std::to_string(after) +
                            (after != before ? " (raised from " + std::to_string(before) + ")"
                                             : std::string()));
  auto hub = hub::Hub::start(loop, std::move(options));
  if (!hub) {
    core::log_error("hub", hub.error().message);
    status = 1;
    co_return;
  }
  hub::Hub* raw = hub->get();
  systemd.ready(raw->one_line_status(), [raw] { return raw->one_line_status(); });
  auto signal = co_await signals.next();
  if (signal.ok()) core::log_info("hub", std::string("received ") + strsignal(*signal));
  systemd.stopping("shutting down");
  (*hub)->shut_down();
  hub->reset();
}

int run_token_command(const Flags& flags) {
  const auto& words = flags.positional;
  if (flags.options.data_dir.empty()) return usage_error("--data-dir is required");
  // A running hub holds the write lock for one loop turn at a time: wait.
  auto store = hub::open_hub_store(flags.options.data_dir, hub::SyncMode::kFull, 10'000);
  if (!store) {
    std::fprintf(stderr, "tether-hub: %s\n", store.error().message.c_str());
    return 1;
  }
  hub::TokenStore tokens(**store);
  Result<std::string> token = make_error("usage", "");
  if (words[0] == "agent" && words.size() == 3 && words[1] == "add") {
    token = tokens.add_agent(words[2]);
  } else if (words[0] == "agent" && words.size() == 3 && words[1] == "rotate") {
    token = tokens.rotate_agent(words[2]);
  } else if (words[0] == "token" && words.size() == 2 && words[1] == "admin") {
    token = tokens.add_admin_token();
  } else {
    return usage_error("unknown command");
  }
  if (!token) {
    std::fprintf(stderr, "tether-hub: %s\n", token.error().message.c_str());
    return 1;
  }
  // The only time the token is ever shown. Stdout alone, so it can go
  // straight into a file: tether-hub agent add edge-1 ... > token && chmod 600 token
  std::printf("%s\n", token->c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args[0] == "--version") {
    std::printf("tether-hub %s\n", TETHER_VERSION);
    return 0;
  }
  auto flags = parse_flags(args);
  if (!flags) return usage_error(flags.error().message);
  if (!flags->log_level.empty()) {
    core::LogLevel level;
    if (!core::parse_log_level(flags->log_level, level)) {
      return usage_error("--log-level: expected debug, info, warning or error");
    }
    core::set_log_level(level);
  }
  const auto& words = flags->positional;
  if (words.empty()) return usage_error("no command");
  try {
    if (words[0] == "serve" && words.size() == 1) {
      core::Loop loop;
      int status = 0;
      core::run_to_completion(loop, serve(loop, flags->options, status));
      return status;
    }
    if (words[0] == "agent" || words[0] == "token") return run_token_command(*flags);
  } catch (const SQLite::Exception& e) {
    std::fprintf(stderr, "tether-hub: database error: %s\n", e.what());
    return 1;
  }
  return usage_error("unknown command '" + words[0] + "'");
}
