#include "core/disk_reserve.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/log.hpp"

namespace tether::core {

std::optional<uint64_t> DiskReserve::free_bytes(const std::string& directory) {
  struct statvfs fs {};
  if (::statvfs(directory.c_str(), &fs) != 0) return std::nullopt;
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

DiskReserve::DiskReserve(const std::string& database_path, uint64_t bytes)
    : database_path_(database_path), bytes_(bytes), path_(database_path + ".reserve") {
  const size_t slash = database_path_.rfind('/');
  directory_ = slash == std::string::npos ? "." : database_path_.substr(0, slash);
  if (bytes_ == 0) return;
  struct stat existing {};
  if (::stat(path_.c_str(), &existing) == 0 && static_cast<uint64_t>(existing.st_size) >= bytes_) {
    held_ = true;
  } else if (auto free = free_bytes(directory_); free && *free > 3 * bytes_) {
    held_ = make();
  } else {
    log_warning("sqlite", database_path_ + ": too little free space for the " +
                              std::to_string(bytes_) + " byte reserve; made later");
  }
}

bool DiskReserve::make() {
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const int failed = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes_));
  ::close(fd);
  if (failed != 0) {
    ::unlink(path_.c_str());
    return false;
  }
  return true;
}

void DiskReserve::guard() {
  if (bytes_ == 0) return;
  auto free = free_bytes(directory_);
  if (!free) return;
  if (held_ && *free < bytes_) {
    ::unlink(path_.c_str());
    held_ = false;
    log_warning("sqlite", database_path_ + ": the disk is nearly full (" + std::to_string(*free) +
                              " bytes free): gave back the " + std::to_string(bytes_) +
                              " byte reserve so that commits still fit");
  } else if (!held_ && *free > 3 * bytes_) {
    held_ = make();
    if (held_) log_info("sqlite", database_path_ + ": disk space is back; reserve made again");
  }
}

}  // namespace tether::core
