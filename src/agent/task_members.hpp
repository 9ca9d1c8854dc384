// The processes of one task, as its init finds them: every process below the
// init by parent links (/proc/PID/stat), and every member of the attempt's
// cgroup. For the init (task_init.hpp): system calls and static memory only.
#pragma once

namespace tether::agent::task_members {

struct ProcessEntry {
  int pid;
  int ppid;
  char state;  // from /proc/PID/stat; 'Z': a zombie
  bool in_tree;
  char name[16];  // the command name, printable; "?" if /proc does not show it
};

// Scans /proc (at most 65536 processes) and marks those below `init`, in
// `cgroup` (a cgroup directory, or null) and `command` (the init's own
// unreaped child, or 0: a pid that cannot have been reused), even where
// /proc hides them (hidepid, systemd's ProtectProc=invisible: then only the
// cgroup and the command itself are found); returns how many marked ones
// are alive (not zombies). Replaces what the previous scan found.
int mark(int init, const char* cgroup, int command);
// The entries of the last scan.
int count();
const ProcessEntry& at(int index);

}  // namespace tether::agent::task_members
