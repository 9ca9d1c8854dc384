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
#include <cstring>

#include "core/process.hpp"

namespace tether::agent {

namespace {

// Everything below runs in the init: system calls and static memory only.

constexpr int kControlFd = 3;
constexpr int kMaxProcesses = 1 << 16;  // entries read from /proc per scan
constexpr int kMaxNamed = 16;           // processes named in one report

struct ProcessEntry {
  int pid;
  int ppid;
  char state;
  bool in_tree;
  char name[16];
};

ProcessEntry g_processes[kMaxProcesses];
int g_process_count = 0;
int g_command = 0;
bool g_command_exited = false;

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

// Marks every process below this init (by parent links); returns how many
// are alive (not zombies).
int mark_tree() {
  scan_processes();
  const int self = ::getpid();
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
    if (mark_tree() == 0) break;
    for (int i = 0; i < g_process_count; ++i) {
      const ProcessEntry& entry = g_processes[i];
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

[[noreturn]] void exec_command(const TaskInitPlan& plan, int report_fd, int signal_fd) {
  // The command gets default signals and none blocked. It stays in the
  // init's process group: a restarted agent that finds an attempt left over
  // kills that group (the init ignores what a task might send to it there).
  core::reset_signals_in_child();
  ::close(kControlFd);
  ::close(signal_fd);
  ::execve(plan.path, plan.argv, plan.envp);
  const int error = errno;
  ssize_t ignored = ::write(report_fd, &error, sizeof error);
  (void)ignored;
  ::_exit(127);
}

}  // namespace

namespace {

[[noreturn]] void report_failure_and_exit(int error) {
  Line line;
  line.add("failed ");
  line.add_number(error);
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
  if (signal_fd < 0 || ::pipe2(report, O_CLOEXEC) != 0) report_failure_and_exit(errno);
  const pid_t command = ::fork();
  if (command == 0) exec_command(plan, report[1], signal_fd);
  ::close(report[1]);
  int error = command < 0 ? errno : 0;
  if (command > 0) {
    ssize_t got;
    do {
      got = ::read(report[0], &error, sizeof error);
    } while (got < 0 && errno == EINTR);
    if (got != static_cast<ssize_t>(sizeof error)) error = 0;
  }
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
    report_failure_and_exit(error);
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
      signal_tree(SIGKILL, true);
      finishing = true;
    }
    const size_t used = static_cast<size_t>(newline - input) + 1;
    std::memmove(input, input + used, buffered - used);
    buffered -= used;
  }
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

void run_task_init(void* context) {
  const auto& plan = *static_cast<const TaskInitPlan*>(context);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  ::prctl(PR_SET_NAME, "tether-init");
  const int signal_fd = take_signals();
  g_command = start_command(plan, signal_fd);
  serve_agent(signal_fd);
  // The agent went away (or poll failed): nothing of the task may outlive it.
  signal_tree(SIGKILL, false);
  ::_exit(0);
}

std::optional<TaskInitEvent> parse_task_init_line(std::string_view line) {
  auto word = [&line]() {
    const size_t space = line.find(' ');
    std::string_view first = line.substr(0, space);
    line = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
    return first;
  };
  auto number = [&word](int64_t& out) {
    const std::string_view text = word();
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
    return error == std::errc() && end == text.data() + text.size() && !text.empty();
  };
  TaskInitEvent event;
  const std::string_view kind = word();
  int64_t a = 0;
  int64_t b = 0;
  if (kind == "started" && number(a)) {
    event.kind = TaskInitEvent::Kind::kStarted;
    event.pid = static_cast<int>(a);
  } else if (kind == "failed" && number(a)) {
    event.kind = TaskInitEvent::Kind::kFailed;
    event.error = static_cast<int>(a);
  } else if (kind == "exited" && number(a) && number(b)) {
    event.kind = TaskInitEvent::Kind::kExited;
    event.exit_code = a;
    event.signal = static_cast<int>(b);
  } else if (kind == "signalled" && number(a) && number(b)) {
    event.kind = TaskInitEvent::Kind::kSignalled;
    event.signal = static_cast<int>(a);
    event.count = static_cast<int>(b);
    while (!line.empty()) {
      const std::string_view entry = word();
      const size_t colon = entry.rfind(':');
      if (colon == std::string_view::npos) return std::nullopt;
      event.names.push_back(std::string(entry.substr(0, colon)) + " (pid " +
                            std::string(entry.substr(colon + 1)) + ")");
    }
  } else if (kind == "done" && line.empty()) {
    event.kind = TaskInitEvent::Kind::kDone;
  } else {
    return std::nullopt;
  }
  return event;
}

}  // namespace tether::agent
