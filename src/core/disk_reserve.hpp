// DiskReserve: space held back for a database's commits. SQLite rolls a
// transaction back when its COMMIT finds the disk full, so a full disk would
// lose that turn's writes. A file of `bytes` (DATABASE.reserve) holds space;
// guard(), just before a commit, deletes it when less than that is free, so
// the commit fits, and makes it again once three times as much is free.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace tether::core {

class DiskReserve {
 public:
  // bytes 0: no reserve (guard() does nothing).
  DiskReserve(const std::string& database_path, uint64_t bytes);

  void guard();

  uint64_t bytes() const { return bytes_; }
  const std::string& directory() const { return directory_; }
  // Bytes free to us on the filesystem holding `directory`; nothing if unknown.
  static std::optional<uint64_t> free_bytes(const std::string& directory);

 private:
  bool make();

  std::string database_path_;
  uint64_t bytes_;
  std::string path_;
  std::string directory_;
  bool held_ = false;
};

}  // namespace tether::core
