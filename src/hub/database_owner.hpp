// DatabaseOwner: run as root, the token commands of tether-hub work on
// hub.db as the user who owns the data directory (the `tether-hub` user of the
// packages): a WAL or journal file root created next to the database would
// lock the hub, which runs as that user, out of it. The effective ids go
// back to root for --output files (the caller's, written with its rights).
#pragma once

#include <string>

namespace tether::hub {

class DatabaseOwner {
 public:
  // Switches the effective uid and gid to the owner of `data_dir` when run
  // as root and the directory is not root's; else does nothing.
  explicit DatabaseOwner(const std::string& data_dir);
  ~DatabaseOwner() { back_to_root(); }
  DatabaseOwner(const DatabaseOwner&) = delete;
  DatabaseOwner& operator=(const DatabaseOwner&) = delete;
  // Back to root, if switched. Exits the process (status 1) if that fails:
  // nothing may go on with the wrong rights.
  void back_to_root();

 private:
  bool switched_ = false;
};

}  // namespace tether::hub
