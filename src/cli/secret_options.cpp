#include "cli/secret_options.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "protocol/task_spec.hpp"
#include "protocol/utf8.hpp"

namespace tether::cli {

namespace {

Error usage(const std::string& option, const std::string& why) {
  return make_error(Errc::kInvalid, "usage", "--secret " + option + ": " + why);
}

// The file's bytes, at most `limit` of them (more is an error).
Result<std::string> read_file(const std::string& option, const std::string& path, size_t limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return usage(option, "cannot open '" + path + "': " + std::strerror(errno));
  std::string content;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string reason = std::strerror(errno);
      ::close(fd);
      return usage(option, "cannot read '" + path + "': " + reason);
    }
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
    if (content.size() > limit) {
      ::close(fd);
      return usage(option, "'" + path + "' is larger than a secret may be (" +
                               std::to_string(protocol::kMaxSecretBytes) + " bytes)");
    }
  }
  ::close(fd);
  return content;
}

// One --secret word: its name and value.
Result<std::pair<std::string, std::string>> read_one(const std::string& word,
                                                     const EnvironmentLookup& environment) {
  const auto equals = word.find('=');
  const std::string name = word.substr(0, equals);
  const std::string shown = equals == std::string::npos ? word : name + "=...";
  if (!protocol::is_env_name(name)) {
    return usage(equals == std::string::npos ? word : name,
                 "not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)");
  }
  std::string value;
  if (equals == std::string::npos) {
    auto found = environment(name);
    if (!found) {
      return usage(name, name +
                             " is not set in tether's environment (export it first, or use "
                             "--secret " +
                             name + "=@FILE)");
    }
    value = std::move(*found);
  } else if (word.compare(equals + 1, 1, "@") == 0) {
    const std::string path = word.substr(equals + 2);
    if (path.empty()) return usage(shown, "=@ needs a file name after it");
    // One byte over the limit for the newline that is dropped.
    TETHER_TRY(content, read_file(shown, path, protocol::kMaxSecretBytes + 1));
    value = std::move(*content);
    if (!value.empty() && value.back() == '\n') value.pop_back();
  } else {
    return usage(shown,
                 "a value on the command line would be visible to every user (ps) and kept in "
                 "your shell's history; use --secret " +
                     name +
                     " (from the environment) or "
                     "--secret " +
                     name + "=@FILE");
  }
  if (value.find('\0') != std::string::npos) {
    return usage(shown, "the value holds a NUL byte, which an environment variable cannot");
  }
  if (!protocol::is_valid_utf8(value)) {
    return usage(shown, "the value is not UTF-8 text (base64-encode binary secrets)");
  }
  if (value.size() > protocol::kMaxSecretBytes) {
    return usage(shown, "the value is larger than a secret may be (" +
                            std::to_string(protocol::kMaxSecretBytes) + " bytes)");
  }
  return std::make_pair(name, std::move(value));
}

}  // namespace

std::optional<std::string> process_environment(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (!value) return std::nullopt;
  return std::string(value);
}

Result<std::map<std::string, std::string>> read_secret_options(
    const std::vector<std::string>& options, const EnvironmentLookup& environment) {
  std::map<std::string, std::string> secrets;
  for (const auto& word : options) {
    TETHER_TRY(secret, read_one(word, environment));
    if (secrets.count(secret->first)) return usage(secret->first, "given twice");
    secrets.emplace(std::move(secret->first), std::move(secret->second));
  }
  return secrets;
}

}  // namespace tether::cli
