#include "core/secret_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace tether::core {

Result<std::string> read_secret_file(const std::string& path, std::string_view what) {
  const std::string named = std::string(what) + " '" + path + "'";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return make_error(Errc::kInvalid, "token_file",
                      "cannot open " + named + ": " + std::strerror(errno));
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return make_error(Errc::kInvalid, "token_file", named + " is not a regular file");
  }
  if ((info.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", info.st_mode & 07777);
    return make_error(Errc::kInvalid, "token_file",
                      named + " has mode " + mode +
                          ": group and others must have no access. Fix it with: "
                          "chmod 600 '" +
                          path + "'");
  }
  if (info.st_uid != ::geteuid() && info.st_uid != 0) {
    ::close(fd);
    return make_error(Errc::kInvalid, "token_file",
                      named + " belongs to another user (uid " + std::to_string(info.st_uid) + ")");
  }
  std::string content(4096, '\0');
  const ssize_t n = ::read(fd, content.data(), content.size());
  ::close(fd);
  if (n < 0) {
    return make_error(Errc::kInvalid, "token_file",
                      "cannot read " + named + ": " + std::strerror(errno));
  }
  content.resize(static_cast<size_t>(n));
  content = content.substr(0, content.find('\n'));
  const auto first = content.find_first_not_of(" \t\r");
  const auto last = content.find_last_not_of(" \t\r");
  if (first == std::string::npos) {
    return make_error(Errc::kInvalid, "token_file", named + " is empty");
  }
  return content.substr(first, last - first + 1);
}

Result<void> write_secret_file(const std::string& path, const std::string& secret, int owner_uid,
                               int owner_gid) {
  const std::string temporary = path + ".new";
  ::unlink(temporary.c_str());
  const int fd =
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return make_error(Errc::kInvalid, "secret_file",
                      "cannot create '" + temporary + "': " + std::strerror(errno));
  }
  auto fail = [&](const std::string& what) {
    const std::string reason = std::strerror(errno);
    ::close(fd);
    ::unlink(temporary.c_str());
    return make_error(Errc::kInvalid, "secret_file", what + " '" + path + "': " + reason);
  };
  if (::fchmod(fd, 0600) != 0) return fail("cannot set the mode of");  // whatever the umask
  if (owner_uid >= 0 &&
      ::fchown(fd, static_cast<uid_t>(owner_uid), static_cast<gid_t>(owner_gid)) != 0) {
    return fail("cannot give away");
  }
  const std::string content = secret + "\n";
  if (::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
    return fail("cannot write");
  }
  if (::fsync(fd) != 0) return fail("cannot sync");
  ::close(fd);
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(temporary.c_str());
    return make_error(Errc::kInvalid, "secret_file", "cannot write '" + path + "': " + reason);
  }
  return {};
}

}  // namespace tether::core
