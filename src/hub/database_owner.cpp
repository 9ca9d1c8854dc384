#include "hub/database_owner.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace tether::hub {

DatabaseOwner::DatabaseOwner(const std::string& data_dir) {
  struct stat info {};
  if (::geteuid() != 0 || ::stat(data_dir.c_str(), &info) != 0 || info.st_uid == 0) return;
  if (::setegid(info.st_gid) != 0) return;
  if (::seteuid(info.st_uid) != 0) {
    (void)::setegid(0);
    return;
  }
  switched_ = true;
}

void DatabaseOwner::back_to_root() {
  if (!switched_) return;
  switched_ = false;
  if (::seteuid(0) != 0 || ::setegid(0) != 0) {
    std::fprintf(stderr, "tether-hub: cannot return to root after using the database\n");
    std::exit(1);
  }
}

}  // namespace tether::hub
