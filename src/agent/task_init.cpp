#include "agent/task_init.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "agent/task_confinement.hpp"
#include "agent/task_members.hpp"

namespace tether::agent {

namespace {

// Everything below runs in the init: system calls and static memory only.

constexpr int kControlFd = 3;
constexpr int kMaxNamed = 16;  // processes named in one report

int g_command = 0;
bool g_command_exited = false;
const TaskInitPlan* g_plan = nullptr;

// A line built without allocating.
struct Line {
  char text[1536];
  size_t length = 0;
  void add(const char* s) {
    while (*s && length < sizeof text - 2)
      text[length++] = *s++;
  }
  void add_number(int64_t value) {
    char digits[24];
    auto [end, error] = std::to_chars(digits, digits + sizeof digits, value);
    (void)error;
    for (char* p = digits; p < end && length < sizeof text - 2; ++p)
      text[length++] = *p;
  }
};

void send_line(Line& line) {
  line.text[line.length++] = '\n';
  size_t sent = 0;
  while (sent < line.length) {
    const ssize_t n = ::send(kControlFd, line.text + sent, line.length - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the agent is gone: its end of file will tell us
    sent += static_cast<size_t>(n);
  }
}

void report_exit(int status) {
  Line line;
  line.add("exited ");
  if (WIFEXITED(status)) {
    line.add_number(WEXITSTATUS(status));
    line.add(" 0");
  } else {
    line.add("0 ");
    line.add_number(WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
  send_line(line);
}

// Reaps every child that has exited; the command's exit is reported.
void reap_children() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    if (pid == g_command && !g_command_exited) {
      g_command_exited = true;
      report_exit(status);
    }
  }
}

bool has_children() {
  siginfo_t info{};
  return ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

// Marks the task's processes (task_members::mark); how many are alive. With
// no child at all, none: the init is a child subreaper, so every living
// process of the task descends from it (an orphan is reparented to it), and
// the cgroup's members are the command's descendants. That answer needs no
// scan of /proc, which 200 tasks ending together paid 600 reads each for,
// two or three times (issue [6/8]).
int mark_members() {
  if (!has_children()) return 0;
  const int command = g_command_exited ? 0 : g_command;
  return task_members::mark(::getpid(), g_plan->cgroup, command);
}

void pause_briefly() {
  timespec pause{0, 5'000'000};
  ::nanosleep(&pause, nullptr);
}

// Sends `signum` to every living process of the task. With SIGKILL, goes on
// until none is left (a process may fork between a scan and the kill).
// `report`: answer with "signalled SIGNAL N NAME:PID...".
void signal_tree(int signum, bool report) {
  static int seen[4096];
  int seen_count = 0;
  int total = 0;
  Line names;
  for (int round = 0; round < 400; ++round) {
    if (mark_members() == 0) break;
    // cgroup.kill reaches every member at once, even one forking right now.
    if (signum == SIGKILL && g_plan->cgroup) confinement::kill_cgroup(g_plan->cgroup);
    for (int i = 0; i < task_members::count(); ++i) {
      const task_members::ProcessEntry& entry = task_members::at(i);
      if (!entry.in_tree || entry.state == 'Z') continue;
      ::kill(entry.pid, signum);
      bool known = false;
      for (int k = 0; k < seen_count && !known; ++k)
        known = seen[k] == entry.pid;
      if (known) continue;
      if (seen_count < 4096) seen[seen_count++] = entry.pid;
      if (++total <= kMaxNamed) {
        names.add(" ");
        names.add(entry.name);
        names.add(":");
        names.add_number(entry.pid);
      }
    }
    if (signum != SIGKILL) break;
    reap_children();
    pause_briefly();
  }
  reap_children();
  if (!report) return;
  Line line;
  line.add("signalled ");
  line.add_number(signum);
  line.add(" ");
  line.add_number(total);
  names.text[names.length] = '\0';
  line.add(names.text);
  send_line(line);
}

// Whether a process of the task, other than a zombie, is still there.
bool any_living_member() {
  if (mark_members() == 0) return false;
  for (int i = 0; i < task_members::count(); ++i) {
    const task_members::ProcessEntry& entry = task_members::at(i);
    if (entry.in_tree && entry.state != 'Z') return true;
  }
  return false;
}

// "finish" comes once the output pipes have closed, and a process that
// wrote last (`(sleep 1; echo late) &`) may still be on its way out: it
// gets about 100 ms to end by itself, so that it is neither killed nor
// reported as left running. One that stays is killed and reported.
void let_exiting_processes_end() {
  for (int round = 0; round < 20; ++round) {
    reap_children();
    if (!any_living_member()) return;
    pause_briefly();
  }
}

// Why the command could not start: an errno and the step that failed.
struct StartFailure {
  int error = 0;
  int stage = 0;
};
constexpr int kStageExec = 0;
constexpr int kStageCgroup = 1;
constexpr int kStageUser = 2;
constexpr int kStageCwd = 3;
constexpr int kStagePlan = 4;

// Every signal back to its default disposition (an ignored one would be
// inherited across exec) and none blocked, for the command. Through the
// system call: glibc's sigaction refuses its internal signals 32 and 33,
// which its posix_spawn leaves ignored in the init it started.
void reset_signals() {
  struct KernelSigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)();
    uint64_t mask;
  };
  for (int signum = 1; signum <= 64; ++signum) {
    if (signum == SIGKILL || signum == SIGSTOP) continue;
    const KernelSigaction action{SIG_DFL, 0, nullptr, 0};
    ::syscall(SYS_rt_sigaction, signum, &action, nullptr, sizeof action.mask);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

[[noreturn]] void fail_start(int report_fd, int error, int stage) {
  const StartFailure failure{error, stage};
  ssize_t ignored = ::write(report_fd, &failure, sizeof failure);
  (void)ignored;
  ::_exit(127);
}

[[noreturn]] void exec_command(const TaskInitPlan& plan, int report_fd, int signal_fd) {
  // The command gets default signals and none blocked. It stays in the
  // init's process group: a restarted agent that finds an attempt left over
  // kills that group (the init ignores what a task might send to it there).
  reset_signals();
  ::close(kControlFd);
  ::close(signal_fd);
  // Into the cgroup before anything of the task runs, then down to the
  // task's user with no capabilities: in this order, as joining needs the
  // agent's rights.
  if (plan.cgroup) {
    if (const int error = confinement::join_cgroup(plan.cgroup); error != 0)
      fail_start(report_fd, error, kStageCgroup);
  }
  if (const int error = confinement::drop_privileges(plan); error != 0)
    fail_start(report_fd, error, kStageUser);
  if (plan.cwd && ::chdir(plan.cwd) != 0) fail_start(report_fd, errno, kStageCwd);
  ::execve(plan.path, plan.argv, plan.envp);
  fail_start(report_fd, errno, kStageExec);
}

}  // namespace

namespace {

[[noreturn]] void report_failure_and_exit(int error, int stage) {
  if (g_plan && g_plan->cgroup) confinement::remove_cgroup(g_plan->cgroup);
  Line line;
  line.add("failed ");
  line.add_number(error);
  line.add(stage == kStagePlan     ? " plan"
           : stage == kStageCgroup ? " cgroup"
           : stage == kStageUser   ? " user"
           : stage == kStageCwd    ? " cwd"
                                   : " exec");
  send_line(line);
  ::_exit(0);
}

// Signals meant for the task reach it from us; a stray one must not end the
// init while the task runs. SIGCHLD is read from the returned signalfd.
int take_signals() {
  for (int signum : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2}) {
    struct sigaction action {};
    action.sa_handler = SIG_IGN;
    ::sigaction(signum, &action, nullptr);
  }
  sigset_t child_signal;
  ::sigemptyset(&child_signal);
  ::sigaddset(&child_signal, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &child_signal, nullptr);
  return ::signalfd(-1, &child_signal, SFD_CLOEXEC | SFD_NONBLOCK);
}

// Forks and execs the command; says "started PID" or "failed ERRNO" (and
// exits) to the agent.
pid_t start_command(const TaskInitPlan& plan, int signal_fd) {
  int report[2];
  if (signal_fd < 0 || ::pipe2(report, O_CLOEXEC) != 0) report_failure_and_exit(errno, kStageExec);
  const pid_t command = ::fork();
  if (command == 0) exec_command(plan, report[1], signal_fd);
  ::close(report[1]);
  StartFailure failure{command < 0 ? errno : 0, kStageExec};
  if (command > 0) {
    ssize_t got;
    do {
      got = ::read(report[0], &failure, sizeof failure);
    } while (got < 0 && errno == EINTR);
    if (got != static_cast<ssize_t>(sizeof failure)) failure = StartFailure{};
  }
  const int error = failure.error;
  ::close(report[0]);
  // The pipes are the command's: held here too, they would never reach end
  // of file while the init lives.
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::close(null);
  }
  if (error != 0) {
    if (command > 0) {
      int status;
      ::waitpid(command, &status, 0);
    }
    report_failure_and_exit(error, failure.stage);
  }
  Line line;
  line.add("started ");
  line.add_number(command);
  send_line(line);
  return command;
}

// Runs each complete command line in `input` (term, kill, finish) and keeps
// the incomplete rest.
void run_commands(char* input, size_t capacity, size_t& buffered, bool& finishing) {
  for (;;) {
    char* newline = static_cast<char*>(std::memchr(input, '\n', buffered));
    if (!newline) {
      if (buffered == capacity) buffered = 0;  // no command is this long
      return;
    }
    *newline = '\0';
    if (std::strcmp(input, "term") == 0) {
      signal_tree(SIGTERM, true);
    } else if (std::strcmp(input, "kill") == 0) {
      signal_tree(SIGKILL, true);
    } else if (std::strcmp(input, "finish") == 0) {
      let_exiting_processes_end();
      signal_tree(SIGKILL, true);
      finishing = true;
    }
    const size_t used = static_cast<size_t>(newline - input) + 1;
    std::memmove(input, input + used, buffered - used);
    buffered -= used;
  }
}

// "limited LIMIT N" when the cgroup's `file` counts N > 0 events `key`.
void report_limit(bool watched, const char* file, const char* key, const char* limit) {
  if (!watched) return;
  const int64_t times = confinement::cgroup_event_count(g_plan->cgroup, file, key);
  if (times <= 0) return;
  Line line;
  line.add("limited ");
  line.add(limit);
  line.add(" ");
  line.add_number(times);
  send_line(line);
}

// Nothing of the task runs any more: its cgroup goes, then, as the task's
// user (the init needs no rights after this), what the task left in its home.
void clean_up() {
  if (g_plan->cgroup) {
    report_limit(g_plan->watch_memory, "memory.events", "oom_kill", "memory_max");
    report_limit(g_plan->watch_pids, "pids.events", "max", "pids_max");
    confinement::remove_cgroup(g_plan->cgroup);
  }
  if (!g_plan->home) return;
  if (g_plan->switch_user &&
      (::syscall(SYS_setresgid, g_plan->gid, g_plan->gid, g_plan->gid) != 0 ||
       ::syscall(SYS_setresuid, g_plan->uid, g_plan->uid, g_plan->uid) != 0)) {
    return;
  }
  confinement::empty_directory(g_plan->home);
}

// Reaps children and obeys the agent until "finish" leaves no child (then
// "done") or the agent goes away.
void serve_agent(int signal_fd) {
  bool finishing = false;
  char input[256];
  size_t buffered = 0;
  for (;;) {
    if (finishing) {
      reap_children();
      if (!has_children()) {
        clean_up();
        Line line;
        line.add("done");
        send_line(line);
        ::_exit(0);
      }
    }
    pollfd watched[2] = {{kControlFd, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    const int ready = ::poll(watched, 2, finishing ? 10 : -1);
    if (ready < 0 && errno != EINTR) return;
    if (watched[1].revents) {
      signalfd_siginfo info;
      while (::read(signal_fd, &info, sizeof info) > 0) {
      }
      reap_children();
    }
    if (!watched[0].revents) continue;
    const ssize_t n = ::read(kControlFd, input + buffered, sizeof input - buffered);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the agent is gone
    buffered += static_cast<size_t>(n);
    run_commands(input, sizeof input, buffered, finishing);
  }
}

}  // namespace

void run_task_init(const TaskInitPlan* readable_plan) {
  ::prctl(PR_SET_NAME, "tether-init");
  if (!readable_plan) report_failure_and_exit(EPROTO, kStagePlan);
  const TaskInitPlan& plan = *readable_plan;
  g_plan = &plan;
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  const int signal_fd = take_signals();
  g_command = start_command(plan, signal_fd);
  serve_agent(signal_fd);
  // The agent went away (or poll failed): nothing of the task may outlive it.
  signal_tree(SIGKILL, false);
  clean_up();
  ::_exit(0);
}

}  // namespace tether::agent
