#include "core/secret_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace tether::core {

Result<std::string> read_secret_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return make_error("token_file",
                      "cannot open token file '" + path + "': " + std::strerror(errno));
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return make_error("token_file", "token file '" + path + "' is not a regular file");
  }
  if ((info.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", info.st_mode & 07777);
    return make_error("token_file", "token file '" + path + "' has mode " + mode +
                                        ": group and others must have no access. Fix it with: "
                                        "chmod 600 '" +
                                        path + "'");
  }
  if (info.st_uid != ::geteuid() && info.st_uid != 0) {
    ::close(fd);
    return make_error("token_file", "token file '" + path + "' belongs to another user (uid " +
                                        std::to_string(info.st_uid) + ")");
  }
  std::string content(4096, '\0');
  const ssize_t n = ::read(fd, content.data(), content.size());
  ::close(fd);
  if (n < 0) {
    return make_error("token_file",
                      "cannot read token file '" + path + "': " + std::strerror(errno));
  }
  content.resize(static_cast<size_t>(n));
  content = content.substr(0, content.find('\n'));
  const auto first = content.find_first_not_of(" \t\r");
  const auto last = content.find_last_not_of(" \t\r");
  if (first == std::string::npos) {
    return make_error("token_file", "token file '" + path + "' is empty");
  }
  return content.substr(first, last - first + 1);
}

}  // namespace tether::core
