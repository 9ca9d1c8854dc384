#include "agent/task_confinement.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <initializer_list>

namespace tether::agent::confinement {

namespace {

constexpr int kMaxDepth = 64;

// `directory`/`file` into `out`; false if it does not fit.
bool join_path(char* out, size_t capacity, const char* directory, const char* file) {
  const size_t a = std::strlen(directory);
  const size_t b = std::strlen(file);
  if (a + 1 + b + 1 > capacity) return false;
  std::memcpy(out, directory, a);
  out[a] = '/';
  std::memcpy(out + a + 1, file, b + 1);
  return true;
}

int write_file(const char* cgroup, const char* file, const char* text) {
  char path[4096];
  if (!join_path(path, sizeof path, cgroup, file)) return ENAMETOOLONG;
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const ssize_t written = ::write(fd, text, std::strlen(text));
  const int error = written < 0 ? errno : 0;
  ::close(fd);
  return error;
}

void pause_briefly() {
  timespec pause{0, 5'000'000};
  ::nanosleep(&pause, nullptr);
}

// Removes the entries of the open directory `fd`; `depth` bounds recursion.
void empty_at(int fd, int depth) {
  alignas(8) char buffer[2048];
  for (int pass = 0; pass < 1000; ++pass) {
    bool removed_any = false;
    ::lseek(fd, 0, SEEK_SET);
    for (;;) {
      const long n = ::syscall(SYS_getdents64, fd, buffer, sizeof buffer);
      if (n <= 0) break;
      for (long offset = 0; offset < n;) {
        const auto* entry = reinterpret_cast<const struct dirent64*>(buffer + offset);
        offset += entry->d_reclen;
        const char* name = entry->d_name;
        if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
        if (::unlinkat(fd, name, 0) == 0) {
          removed_any = true;
          continue;
        }
        if (errno != EISDIR || depth >= kMaxDepth) continue;
        ::fchmodat(fd, name, 0700, 0);  // a task may have taken its own rights away
        const int child = ::openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0) continue;
        empty_at(child, depth + 1);
        ::close(child);
        if (::unlinkat(fd, name, AT_REMOVEDIR) == 0) removed_any = true;
      }
    }
    if (!removed_any) return;
  }
}

}  // namespace

int join_cgroup(const char* cgroup) {
  return write_file(cgroup, "cgroup.procs", "0");
}

int drop_privileges(const TaskInitPlan& plan) {
  if (plan.switch_user) {
    // The output pipes become the task's, so that it can open /dev/stdout
    // and /dev/stderr (a reopen through /proc/self/fd checks the pipe's
    // owner and mode, 0600). stdin is /dev/null: never chown that.
    for (int fd : {1, 2}) {
      if (::fchown(fd, plan.uid, plan.gid) != 0) return errno;
    }
    if (::syscall(SYS_setgroups, plan.group_count, plan.groups) != 0) return errno;
    if (::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) return errno;
    if (::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) return errno;
  }
  if (::geteuid() == 0) return 0;  // root by choice (run_as = root)
  // Ambient capabilities would survive exec; clear them, then the rest.
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capset, &header, data) != 0) return errno;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  return 0;
}

int cgroup_pids(const char* cgroup, int* pids, int capacity) {
  char path[4096];
  if (!join_path(path, sizeof path, cgroup, "cgroup.procs")) return 0;
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  int count = 0;
  int value = 0;
  bool in_number = false;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0) {
    for (ssize_t i = 0; i < n; ++i) {
      const char c = buffer[i];
      if (c >= '0' && c <= '9') {
        value = value * 10 + (c - '0');
        in_number = true;
      } else if (in_number) {
        if (count < capacity) pids[count++] = value;
        value = 0;
        in_number = false;
      }
    }
  }
  if (in_number && count < capacity) pids[count++] = value;
  ::close(fd);
  return count;
}

bool kill_cgroup(const char* cgroup) {
  return write_file(cgroup, "cgroup.kill", "1") == 0;
}

int64_t cgroup_event_count(const char* cgroup, const char* file, const char* key) {
  char path[4096];
  if (!join_path(path, sizeof path, cgroup, file)) return -1;
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char text[4096];
  ssize_t length = 0;
  for (ssize_t n; length < static_cast<ssize_t>(sizeof text) - 1 &&
                  (n = ::read(fd, text + length, sizeof text - 1 - length)) > 0;) {
    length += n;
  }
  ::close(fd);
  text[length < 0 ? 0 : length] = '\0';
  const size_t key_length = std::strlen(key);
  for (const char* line = text; *line;) {
    const char* end = std::strchr(line, '\n');
    if (!end) end = line + std::strlen(line);
    if (static_cast<size_t>(end - line) > key_length && std::memcmp(line, key, key_length) == 0 &&
        line[key_length] == ' ') {
      int64_t value = 0;
      auto [stop, error] = std::from_chars(line + key_length + 1, end, value);
      return error == std::errc() && stop == end ? value : -1;
    }
    line = *end ? end + 1 : end;
  }
  return -1;
}

void remove_cgroup(const char* cgroup) {
  for (int round = 0; round < 200; ++round) {
    if (::rmdir(cgroup) == 0 || errno == ENOENT) return;
    if (errno != EBUSY) return;
    pause_briefly();
  }
}

void empty_directory(const char* directory) {
  const int fd = ::open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  empty_at(fd, 0);
  ::close(fd);
}

}  // namespace tether::agent::confinement
