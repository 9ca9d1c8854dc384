#include "agent/register_command.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/http_client.hpp"
#include "core/resolver.hpp"
#include "core/secret_file.hpp"
#include "core/url.hpp"
#include "protocol/api_error.hpp"
#include "protocol/json_reader.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/task_spec.hpp"

namespace tether::agent {

namespace {

constexpr const char* kUsage =
    "usage: tether-agent register --hub-url URL --registration-token-file FILE [--name NAME]\n"
    "         [--config FILE] [--token-file FILE] [--ca-file FILE] [--insecure] [--user USER]\n"
    "\n"
    "Registers this host with the hub and configures the agent:\n"
    "  --name NAME       the agent's name (default: this host's name)\n"
    "  --config FILE     agent.conf to update (default /etc/tether/agent.conf)\n"
    "  --token-file FILE where the agent token goes (default /etc/tether/agent.token)\n"
    "  --ca-file FILE    extra CA certificates (PEM) for an https hub; kept in agent.conf\n"
    "  --insecure        allow plain http to a hub that is not on loopback\n"
    "  --user USER       the user the agent runs as, who must own the token (default:\n"
    "                    tether-agent when run as root and that user exists)\n"
    "Then: systemctl enable --now tether-agent\n";

struct Options {
  std::string hub_url;
  std::string registration_token_file;
  std::string name;
  std::string config = "/etc/tether/agent.conf";
  std::string token_file = "/etc/tether/agent.token";
  std::string ca_file;
  bool insecure = false;
  std::string user;
};

int usage(const std::string& message) {
  std::fprintf(stderr, "tether-agent register: %s\n\n%s", message.c_str(), kUsage);
  return 2;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "tether-agent register: %s\n", message.c_str());
  return 1;
}

// This host's name as an agent name: the first label, in the characters
// names may hold.
std::string host_name() {
  char buffer[256] = {0};
  if (::gethostname(buffer, sizeof buffer - 1) != 0) return {};
  std::string name(buffer);
  name = name.substr(0, name.find('.'));
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '-';
  }
  return name;
}

Result<std::string> read_text(const std::string& path) {
  std::ifstream file(path);
  if (!file) return std::string();
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return make_error(Errc::kInvalid, "config", "cannot read " + path);
  return text.str();
}

// Writes `text` over `path` through a new file beside it, keeping the old
// file's owner and mode (a new one: root and the service's group, 0640).
Result<void> write_config(const std::string& path, const std::string& text, int group) {
  struct stat old {};
  const bool existed = ::stat(path.c_str(), &old) == 0;
  const std::string temporary = path + ".new";
  ::unlink(temporary.c_str());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0)
    return make_error(Errc::kInvalid, "config",
                      "cannot write " + temporary + ": " + std::strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ok && ::fchmod(fd, existed ? (old.st_mode & 07777) : 0640) == 0;
  if (ok && ::geteuid() == 0) {
    ok = ::fchown(fd, existed ? old.st_uid : 0,
                  existed ? old.st_gid : static_cast<gid_t>(group >= 0 ? group : 0)) == 0;
  }
  ok = ok && ::fsync(fd) == 0;
  const std::string reason = std::strerror(errno);
  ::close(fd);
  if (!ok || ::rename(temporary.c_str(), path.c_str()) != 0) {
    ::unlink(temporary.c_str());
    return make_error(Errc::kInvalid, "config", "cannot write " + path + ": " + reason);
  }
  return {};
}

}  // namespace

std::string set_config_keys(const std::string& text,
                            const std::vector<std::pair<std::string, std::string>>& settings) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  // The key a line sets, and whether it is only a commented example.
  auto key_of = [](const std::string& line, bool& commented) {
    size_t at = line.find_first_not_of(" \t");
    commented = at != std::string::npos && line[at] == '#';
    if (commented) at = line.find_first_not_of(" \t", at + 1);
    if (at == std::string::npos) return std::string();
    const size_t equals = line.find('=', at);
    if (equals == std::string::npos) return std::string();
    std::string key = line.substr(at, equals - at);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t'))
      key.pop_back();
    return key.find_first_of(" \t") == std::string::npos ? key : std::string();
  };
  for (const auto& [key, value] : settings) {
    const std::string setting = key + " = " + value;
    bool set = false;
    for (auto& line : lines) {
      bool commented = false;
      if (key_of(line, commented) == key && !commented) {
        line = set ? "# " + line : setting;  // a later duplicate would win: comment it out
        set = true;
      }
    }
    for (size_t i = 0; i < lines.size() && !set; ++i) {
      bool commented = false;
      if (key_of(lines[i], commented) == key && commented) {
        lines[i] = setting;
        set = true;
      }
    }
    if (!set) lines.push_back(setting);
  }
  std::string out;
  for (const auto& line : lines)
    out += line + "\n";
  return out;
}

// Fills `options` from the command line; an exit status if the command
// ends here (--help, a usage error).
std::optional<int> parse_options(const std::vector<std::string>& args, Options& options) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--insecure") {
      options.insecure = true;
      continue;
    }
    std::string* target = arg == "--hub-url"                   ? &options.hub_url
                          : arg == "--registration-token-file" ? &options.registration_token_file
                          : arg == "--name"                    ? &options.name
                          : arg == "--config"                  ? &options.config
                          : arg == "--token-file"              ? &options.token_file
                          : arg == "--ca-file"                 ? &options.ca_file
                          : arg == "--user"                    ? &options.user
                                                               : nullptr;
    if (!target) return usage("unknown option '" + arg + "'");
    if (i + 1 >= args.size()) return usage(arg + " needs a value");
    *target = args[++i];
  }
  return std::nullopt;
}

// POST /api/v1/agents/register (docs/protocol.md 11) with the registration
// token: the agent's own token, or why not (nothing was written).
Result<std::string> exchange_token(const core::Url& url, const Options& options,
                                   core::PlainTextPolicy plain_text,
                                   const std::string& registration_token) {
  protocol::JsonWriter body;
  body.begin_object();
  body.field("name", options.name);
  body.end_object();
  core::HttpCall call;
  call.method = "POST";
  call.server = url;
  call.target = "/api/v1/agents/register";
  call.body = body.str();
  call.headers.emplace_back("Authorization", "Bearer " + registration_token);
  call.ca_file = options.ca_file;
  call.plain_text = plain_text;
  call.connect_timeout_s = 10;
  call.read_timeout_s = 30;
  auto reply = core::http_call(call);
  if (!reply)
    return make_error(Errc::kUnreachable, "unreachable",
                      "cannot reach the hub: " + reply.error().message);
  if (reply->status != 201) {
    auto error = protocol::parse_api_error(reply->body);
    return make_error(Errc::kRefused, "refused",
                      "the hub refused the registration (" + std::to_string(reply->status) +
                          "): " + (error ? error->message : reply->body.substr(0, 300)) +
                          "; nothing was written");
  }
  auto document = protocol::parse_json_object(reply->body, "registration");
  if (!document)
    return make_error(Errc::kProtocol, "answer", "the hub's answer: " + document.error().message);
  auto token = protocol::JsonObjectReader(*document, "registration").required_string("token");
  if (!token)
    return make_error(Errc::kProtocol, "answer", "the hub's answer: " + token.error().message);
  return std::move(*token);
}

int register_command(const std::vector<std::string>& args) {
  Options options;
  if (auto early = parse_options(args, options)) return *early;
  if (options.hub_url.empty()) return usage("--hub-url is required");
  if (options.registration_token_file.empty()) {
    return usage(
        "--registration-token-file is required (from tether-hub registration-token create)");
  }
  if (options.name.empty()) options.name = host_name();
  if (!protocol::is_valid_id(options.name)) {
    return usage("--name '" + options.name +
                 "': 1 to 128 characters of A-Z a-z 0-9 . _ : - (give --name)");
  }
  auto url = core::parse_url(options.hub_url);
  if (!url) return usage("--hub-url: " + url.error().message);
  if (url->scheme != "http" && url->scheme != "https") {
    return usage("--hub-url must be http:// or https://");
  }
  const auto plain_text =
      options.insecure ? core::PlainTextPolicy::kAnywhere : core::PlainTextPolicy::kLoopbackOnly;
  if (auto allowed = core::check_plain_text_allowed(url->host, url->uses_tls(), plain_text);
      !allowed) {
    return fail("--hub-url: " + allowed.error().message + ", or pass --insecure");
  }
  // Whom the token must belong to: the agent's user, not root.
  int owner_uid = -1;
  int owner_gid = -1;
  if (::geteuid() == 0) {
    const std::string user = options.user.empty() ? "tether-agent" : options.user;
    if (const passwd* entry = ::getpwnam(user.c_str())) {
      owner_uid = static_cast<int>(entry->pw_uid);
      owner_gid = static_cast<int>(entry->pw_gid);
    } else if (!options.user.empty()) {
      return usage("--user: no user '" + user + "'");
    }
  }
  auto registration_token = core::read_secret_file(options.registration_token_file);
  if (!registration_token) return fail(registration_token.error().message);

  auto token = exchange_token(*url, options, plain_text, *registration_token);
  if (!token) return fail(token.error().message);

  if (auto written = core::write_secret_file(options.token_file, *token, owner_uid, owner_gid);
      !written) {
    return fail(written.error().message + " (the agent " + options.name +
                " is registered: an operator can `tether-hub agent rotate " + options.name +
                " --output FILE` to get a token again)");
  }
  auto text = read_text(options.config);
  if (!text) return fail(text.error().message);
  std::vector<std::pair<std::string, std::string>> settings = {
      {"hub_url", options.hub_url}, {"agent", options.name}, {"token_file", options.token_file}};
  if (!options.ca_file.empty()) settings.emplace_back("ca_file", options.ca_file);
  if (options.insecure) settings.emplace_back("insecure", "true");
  if (auto written = write_config(options.config, set_config_keys(*text, settings), owner_gid);
      !written) {
    return fail(written.error().message);
  }
  std::printf(
      "registered as %s with %s\n  token:  %s (mode 0600)\n  config: %s (hub_url, agent, "
      "token_file set)\nStart the agent: systemctl enable --now tether-agent\n",
      options.name.c_str(), url->origin().c_str(), options.token_file.c_str(),
      options.config.c_str());
  return 0;
}

}  // namespace tether::agent
