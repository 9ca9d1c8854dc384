#include "agent/task_members.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "agent/task_confinement.hpp"

namespace tether::agent::task_members {

namespace {

constexpr int kMaxProcesses = 1 << 16;  // entries read from /proc per scan

ProcessEntry g_processes[kMaxProcesses];
int g_process_count = 0;

// Reads pid, state, ppid and name of one process from /proc/PID/stat.
bool read_stat(const char* pid_text, ProcessEntry& entry) {
  char path[64] = "/proc/";
  size_t at = 6;
  for (const char* p = pid_text; *p && at < sizeof path - 6; ++p)
    path[at++] = *p;
  std::memcpy(path + at, "/stat", 6);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char text[512];
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  // "PID (NAME) S PPID ...": the name may hold spaces and parentheses.
  const char* open = std::strchr(text, '(');
  const char* close = std::strrchr(text, ')');
  if (!open || !close || close < open || close + 4 > text + n) return false;
  int pid = 0;
  std::from_chars(text, open - 1, pid);
  const size_t name_length = std::min<size_t>(static_cast<size_t>(close - open - 1), 15);
  for (size_t i = 0; i < name_length; ++i) {
    const char c = open[1 + i];
    entry.name[i] = (c > ' ' && c < 0x7f && c != ':') ? c : '?';
  }
  entry.name[name_length] = '\0';
  entry.state = close[2];
  int ppid = 0;
  const char* ppid_start = close + 4;
  std::from_chars(ppid_start, text + n, ppid);
  entry.pid = pid;
  entry.ppid = ppid;
  entry.in_tree = false;
  return pid > 0;
}

void scan_processes() {
  g_process_count = 0;
  const int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return;
  alignas(8) char buffer[16384];
  for (;;) {
    const long n = ::syscall(SYS_getdents64, dir, buffer, sizeof buffer);
    if (n <= 0) break;
    for (long offset = 0; offset < n;) {
      // glibc's dirent64 has the kernel's linux_dirent64 layout.
      const auto* entry = reinterpret_cast<const struct dirent64*>(buffer + offset);
      offset += entry->d_reclen;
      const char* name = entry->d_name;
      if (*name < '1' || *name > '9') continue;
      if (g_process_count == kMaxProcesses) break;
      if (read_stat(name, g_processes[g_process_count])) ++g_process_count;
    }
  }
  ::close(dir);
}

// Marks `pid` as the task's, adding it unnamed if /proc does not show it.
void mark_member(int pid) {
  for (int i = 0; i < g_process_count; ++i) {
    if (g_processes[i].pid != pid) continue;
    g_processes[i].in_tree = true;
    return;
  }
  if (g_process_count < kMaxProcesses)
    g_processes[g_process_count++] = ProcessEntry{pid, 0, 'R', true, "?"};
}

// Marks the processes of the attempt's cgroup, adding those /proc does not
// show (hidepid) as unnamed entries.
void mark_cgroup_members(const char* cgroup) {
  static int pids[4096];
  const int count = confinement::cgroup_pids(cgroup, pids, 4096);
  for (int k = 0; k < count; ++k)
    mark_member(pids[k]);
}

}  // namespace

int mark(int init, const char* cgroup, int command) {
  scan_processes();
  if (cgroup) mark_cgroup_members(cgroup);
  if (command > 0) mark_member(command);
  const int self = init;
  bool grew = true;
  while (grew) {
    grew = false;
    for (int i = 0; i < g_process_count; ++i) {
      ProcessEntry& entry = g_processes[i];
      if (entry.in_tree) continue;
      bool parent_in_tree = entry.ppid == self;
      for (int j = 0; !parent_in_tree && j < g_process_count; ++j) {
        parent_in_tree = g_processes[j].in_tree && g_processes[j].pid == entry.ppid;
      }
      if (parent_in_tree) {
        entry.in_tree = true;
        grew = true;
      }
    }
  }
  int alive = 0;
  for (int i = 0; i < g_process_count; ++i) {
    if (g_processes[i].in_tree && g_processes[i].state != 'Z') ++alive;
  }
  return alive;
}

int count() {
  return g_process_count;
}

const ProcessEntry& at(int index) {
  return g_processes[index];
}

}  // namespace tether::agent::task_members
