// tether-hub: the reference control plane.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "core/crash_report.hpp"
#include "core/log.hpp"
#include "core/pg_connection.hpp"
#include "core/run.hpp"
#include "core/secret_file.hpp"
#include "core/service_notifier.hpp"
#include "core/signal_set.hpp"
#include "hub/agent_commands.hpp"
#include "hub/audit_log.hpp"
#include "hub/database_owner.hpp"
#include "hub/hub.hpp"
#include "hub/hub_migration.hpp"
#include "hub/token_commands.hpp"
#include "hub/tokens.hpp"
#include "protocol/duration_text.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/labels.hpp"
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
    "        [--ui-listen ADDR:PORT] [--ui-dev-assets DIR]\n"
    "        [--database postgresql://USER@HOST:PORT/DB [--database-password-file FILE]]\n"
    "      run the hub (default --listen 127.0.0.1:7070); --ui-listen also serves the web UI\n"
    "      (docs/ui.md) there; --ui-dev-assets serves its page files from DIR (UI work);\n"
    "      --database keeps the data in PostgreSQL instead of DIR/hub.db (the password from\n"
    "      the file, PGPASSWORD or ~/.pgpass; never in the URI); the other commands take it too;\n"
    "      --sync full flushes hub.db to disk at every commit (default normal: a crash of the\n"
    "      hub loses nothing, one of the OS may lose the last commits); not with --database\n"
    "  registration-token create --data-dir DIR [--expires 24h|7d|30m|never] [--output FILE]\n"
    "        [--labels key=value,...]\n"
    "      a token edge hosts exchange for their own (tether-agent register); default 24h;\n"
    "      each agent it registers gets the labels\n"
    "  registration-token list|revoke ID --data-dir DIR\n"
    "  agent add NAME --data-dir DIR [--output FILE]     register an agent by hand; its token\n"
    "  agent rotate NAME --data-dir DIR [--output FILE]  a new token; the old one stops working\n"
    "  agent list --data-dir DIR\n"
    "  agent label NAME key=value... key-... --data-dir DIR\n"
    "      set or remove (key-) the hub's own labels of an agent; they take precedence\n"
    "      over those the agent reports (agent.conf labels)\n"
    "  token create --name NAME --role admin|operator|viewer [--agents 'web-*,db-1']\n"
    "        --data-dir DIR [--output FILE]\n"
    "      an operator token; --agents limits an operator to agents matching the patterns\n"
    "  token admin --data-dir DIR [--output FILE]        an admin token, named admin-...\n"
    "  token list --data-dir DIR                        operator tokens: id, name, role, ...\n"
    "  token revoke ID|NAME --data-dir DIR\n"
    "  migrate --from sqlite:PATH --to postgresql://USER@HOST:PORT/DB [--to-password-file FILE]\n"
    "      copy every row of hub.db (PATH: the file or its data directory) into a new\n"
    "      PostgreSQL database, in one transaction (docs/operations.md)\n"
    "  --version                          print the version\n"
    "\n"
    "A token is shown once: on stdout, or written to --output FILE (mode 0600).\n"
    "These commands work while the hub is running; their changes go to the audit trail.\n";

// The problem alone: the whole usage would push it off the screen.
int usage_error(const std::string& message) {
  std::fprintf(stderr, "tether-hub: %s\n(tether-hub --help lists the commands and options)\n",
               message.c_str());
  return 2;
}

struct Flags {
  std::vector<std::string> positional;
  hub::HubOptions options;
  std::string log_level;
  std::string output;                             // --output FILE: where a new token goes
  std::string expires;                            // --expires: a registration token's lifetime
  std::optional<std::string> labels;              // --labels: given to the agents it registers
  std::optional<std::string> name, role, agents;  // token create
  bool sync_given = false;                        // --sync (hub.db only)
};

// "30m", "24h", "7d", "3600s" or "never" (0) as seconds.
Result<int64_t> parse_lifetime(const std::string& text) {
  if (text == "never") return int64_t{0};
  const auto seconds = protocol::parse_duration_s(text);
  if (!seconds) {
    return make_error(
        Errc::kInvalid, "usage",
        "--expires: expected a count and s, m, h or d (e.g. 24h), or never; got '" + text + "'");
  }
  return *seconds;
}

// --database URI (no password in it) or --database-password-file FILE (its
// first line, the file 0600).
Result<void> apply_database_flag(hub::DatabaseSettings& database, const std::string& arg,
                                 const std::string& value) {
  if (arg == "--database") {
    if (auto checked = core::check_pg_uri(value, "--database"); !checked) return checked.error();
    database.uri = value;
    return {};
  }
  auto password = core::read_secret_file(value, "password file");
  if (!password) {
    return make_error(Errc::kInvalid, "usage",
                      "--database-password-file: " + password.error().message);
  }
  database.password = *password;
  return {};
}

// One option that takes a value: checked, and stored in `flags`.
Result<void> apply_flag(Flags& flags, const std::string& arg, const std::string& value) {
  if (arg == "--data-dir") flags.options.data_dir = value;
  if (arg == "--database" || arg == "--database-password-file")
    return apply_database_flag(flags.options.database, arg, value);
  if (arg == "--listen") flags.options.listen = value;
  if (arg == "--tls-cert") flags.options.tls_certificate_file = value;
  if (arg == "--tls-key") flags.options.tls_private_key_file = value;
  if (arg == "--log-level") flags.log_level = value;
  if (arg == "--metrics-listen") flags.options.metrics_listen = value;
  if (arg == "--ui-listen") flags.options.ui_listen = value;
  if (arg == "--ui-dev-assets") flags.options.ui_dev_assets_dir = value;
  if (arg == "--output") flags.output = value;
  if (arg == "--expires") flags.expires = value;
  if (arg == "--labels") flags.labels = value;
  if (arg == "--name") flags.name = value;
  if (arg == "--role") flags.role = value;
  if (arg == "--agents") flags.agents = value;
  if (arg == "--trusted-proxy") {
    if (hub::AuthThrottle::canonical_address(value).empty()) {
      return make_error(
          Errc::kInvalid, "usage",
          "--trusted-proxy: expected an IP address (e.g. 127.0.0.1), got '" + value + "'");
    }
    flags.options.trusted_proxies.push_back(value);
  }
  if (arg == "--sync") {
    if (value != "normal" && value != "full")
      return make_error(Errc::kInvalid, "usage", "--sync: expected normal or full");
    flags.options.sync = value == "full" ? hub::SyncMode::kFull : hub::SyncMode::kNormal;
    flags.sync_given = true;
  }
  auto count = [&](uint64_t low, uint64_t high) -> Result<uint64_t> {
    auto parsed = protocol::parse_wire_integer(value, high);
    if (!parsed || *parsed < low) {
      return make_error(Errc::kInvalid, "usage",
                        arg + ": expected " + std::to_string(low) + " to " + std::to_string(high) +
                            ", got '" + value + "'");
    }
    return *parsed;
  };
  if (arg == "--max-connections") {
    TETHER_TRY(n, count(1, 10'000'000));
    flags.options.max_connections = *n;
  }
  if (arg == "--max-connections-per-address") {
    TETHER_TRY(n, count(1, 10'000'000));
    flags.options.max_connections_per_address = *n;
  }
  if (arg == "--request-timeout-s") {
    TETHER_TRY(n, count(1, 3600));
    flags.options.request_timeout_s = static_cast<unsigned int>(*n);
  }
  if (arg == "--max-event-streams") {
    size_t streams = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), streams);
    if (error != std::errc() || end != value.data() + value.size() || streams < 1 ||
        streams > 100000) {
      return make_error(Errc::kInvalid, "usage", "--max-event-streams: expected 1 to 100000");
    }
    flags.options.max_event_streams = streams;
  }
  if (arg == "--lease-s") {
    try {
      flags.options.lease_s = std::stoll(value);
    } catch (const std::exception&) {
      return make_error(Errc::kInvalid, "usage", "--lease-s: expected seconds");
    }
    if (flags.options.lease_s < 1 || flags.options.lease_s > 86400) {
      return make_error(Errc::kInvalid, "usage", "--lease-s: expected 1 to 86400 seconds");
    }
  }
  return {};
}

Result<Flags> parse_flags(const std::vector<std::string>& args) {
  Flags flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&](const char* name) -> Result<std::string> {
      if (i + 1 >= args.size())
        return make_error(Errc::kInvalid, "usage", std::string(name) + " needs a value");
      return args[++i];
    };
    if (arg == "--insecure-listen") {
      flags.options.insecure_listen = true;
    } else if (arg == "--data-dir" || arg == "--listen" || arg == "--tls-cert" ||
               arg == "--tls-key" || arg == "--lease-s" || arg == "--sync" ||
               arg == "--log-level" || arg == "--metrics-listen" || arg == "--max-event-streams" ||
               arg == "--trusted-proxy" || arg == "--max-connections" ||
               arg == "--max-connections-per-address" || arg == "--request-timeout-s" ||
               arg == "--output" || arg == "--expires" || arg == "--labels" || arg == "--name" ||
               arg == "--role" || arg == "--agents" || arg == "--ui-listen" ||
               arg == "--ui-dev-assets" || arg == "--database" ||
               arg == "--database-password-file") {
      TETHER_TRY(v, value(arg.c_str()));
      if (auto applied = apply_flag(flags, arg, *v); !applied) return applied.error();
    } else if (arg.rfind("--", 0) == 0) {
      return make_error(Errc::kInvalid, "usage", "unknown option " + arg);
    } else {
      flags.positional.push_back(arg);
    }
  }
  if (flags.sync_given && !flags.options.database.uri.empty()) {
    // Accepted, it would change nothing: PostgreSQL's own setting decides.
    return make_error(Errc::kInvalid, "usage",
                      "--sync applies to hub.db only; with --database, PostgreSQL's "
                      "synchronous_commit decides when a commit is durable (its default, on: "
                      "flushed at every commit)");
  }
  return flags;
}

core::Co<void> serve(core::Loop& loop, hub::HubOptions options, int& status) {
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
  if (signal.ok()) {
    core::log_info("hub", "received SIG" + std::string(sigabbrev_np(*signal)) + "; shutting down");
  }
  systemd.stopping("shutting down");
  (*hub)->shut_down();
  hub->reset();
}

// The store, tokens and audit trail a command that works on hub.db uses.
struct Local {
  core::SqlStore& store;
  hub::TokenStore& tokens;
  hub::AuditLog& audit;
  hub::DatabaseOwner& owner;
};

// registration-token create|list|revoke.
int registration_token_command(const Flags& flags, Local local) {
  const auto& words = flags.positional;
  auto failed = [](const Error& error) {
    std::fprintf(stderr, "tether-hub: %s\n", error.message.c_str());
    return 1;
  };
  protocol::Labels labels;
  if (flags.labels) {
    auto parsed = protocol::parse_labels(*flags.labels);
    if (!parsed) return usage_error("--labels: " + parsed.error().message);
    labels = std::move(*parsed);
  }
  if (words[0] == "registration-token" && words.size() == 2 && words[1] == "create") {
    const std::string expires = flags.expires.empty() ? "24h" : flags.expires;
    auto lifetime = parse_lifetime(expires);
    if (!lifetime) return usage_error(lifetime.error().message);
    auto made = local.tokens.add_registration_token(*lifetime, labels);
    if (!made) return failed(made.error());
    protocol::JsonWriter detail;
    detail.begin_object();
    detail.field("expires", expires);
    detail.field("labels", protocol::format_labels(labels));
    detail.end_object();
    local.audit.record(hub::local_actor(),
                       {"registration_token.create", made->second, detail.str(), {}});
    std::fprintf(stderr, "tether-hub: registration token %s, %s\n", made->second.c_str(),
                 *lifetime == 0 ? "valid until revoked" : ("valid for " + expires).c_str());
    return hub::hand_out_token(local.store, flags.output, made->first,
                               "registration token " + made->second, local.owner);
  }
  if (words[0] == "registration-token" && words.size() == 2 && words[1] == "list") {
    std::printf("%-18s %-26s %-26s %-26s %-10s %s\n", "ID", "CREATED", "EXPIRES", "REVOKED",
                "REGISTERED", "LABELS");
    for (const auto& token : local.tokens.registration_tokens()) {
      std::printf("%-18s %-26s %-26s %-26s %-10lld %s\n", token.id.c_str(),
                  token.created_at.c_str(),
                  token.expires_at.empty() ? "never" : token.expires_at.c_str(),
                  token.revoked_at.empty() ? "-" : token.revoked_at.c_str(),
                  static_cast<long long>(token.registered), token.labels.c_str());
    }
    return 0;
  }
  if (words[0] == "registration-token" && words.size() == 3 && words[1] == "revoke") {
    if (auto revoked = local.tokens.revoke_registration_token(words[2]); !revoked) {
      return failed(revoked.error());
    }
    local.audit.record(hub::local_actor(), {"registration_token.revoke", words[2], "{}", {}});
    if (auto committed = local.store.commit(); !committed) return failed(committed.error());
    std::fprintf(stderr, "tether-hub: registration token %s revoked\n", words[2].c_str());
    return 0;
  }
  return usage_error("unknown command");
}

int run_local_command(const Flags& flags) {
  const auto& words = flags.positional;
  if (flags.options.data_dir.empty()) return usage_error("--data-dir is required");
  const bool makes_token =
      (words[0] == "agent" && words.size() == 3 && (words[1] == "add" || words[1] == "rotate")) ||
      (words[0] == "token" && words.size() == 2 && (words[1] == "admin" || words[1] == "create")) ||
      (words[0] == "registration-token" && words.size() == 2 && words[1] == "create");
  if (!flags.output.empty() && !makes_token)
    return usage_error("--output goes with a command that makes a token");
  if ((!flags.expires.empty() || flags.labels) &&
      !(words[0] == "registration-token" && words.size() == 2 && words[1] == "create")) {
    return usage_error("--expires and --labels go with registration-token create");
  }
  if ((flags.name || flags.role || flags.agents) && words[0] != "token")
    return usage_error("--name, --role and --agents go with token create");
  hub::DatabaseOwner owner(flags.options.data_dir);
  // A running hub holds the write lock for one loop turn at a time: wait.
  auto store = hub::open_hub_database(flags.options.data_dir, flags.options.database,
                                      hub::SyncMode::kFull, 10'000);
  if (!store) {
    std::fprintf(stderr, "tether-hub: %s\n", store.error().message.c_str());
    return 1;
  }
  // A change and its audit entry are stored together, or neither is.
  if (words.size() > 1 && words[1] != "list") (*store)->begin_write();
  hub::AgentDirectory agents(**store);
  hub::TokenStore tokens(**store, agents);
  hub::AuditLog audit(**store);
  const Local local{**store, tokens, audit, owner};
  if (words[0] == "agent") {
    auto status =
        hub::run_agent_command({words, flags.output}, **store, agents, tokens, audit, owner);
    return status ? *status : usage_error(status.error().message);
  }
  if (words[0] == "registration-token") return registration_token_command(flags, local);
  auto status = hub::run_token_command({words, flags.output, flags.name, flags.role, flags.agents},
                                       **store, tokens, audit, owner);
  return status ? *status : usage_error(status.error().message);
}

}  // namespace

int main(int argc, char** argv) {
  core::install_crash_report("tether-hub");
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  // `tether-hub serve --help` too: help anywhere is help, not an unknown option.
  const auto is_help = [](const std::string& arg) { return arg == "--help" || arg == "-h"; };
  if (args[0] == "help" || std::any_of(args.begin(), args.end(), is_help)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args[0] == "migrate") return hub::run_migrate_command({args.begin() + 1, args.end()});
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
    if (words[0] == "agent" || words[0] == "token" || words[0] == "registration-token") {
      return run_local_command(*flags);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tether-hub: database error: %s\n", e.what());
    return 1;
  }
  return usage_error("unknown command '" + words[0] + "'");
}
