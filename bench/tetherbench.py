"""Shared parts of the benchmarks: a release build, a real tether-hub and a
real tether-agent on 127.0.0.1 in a scratch directory, the operator API, and
what /proc says about a process.

Python's standard library only: meson needs python3, so it is wherever the
build is. Every wait has a deadline; every figure is measured, not assumed.
"""

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("TETHER_BENCH_BUILD", os.path.join(ROOT, "build-bench"))
# tether-task-init: the agent starts it for every task (found beside the agent).
TARGETS = ["src/agent/tether-agent", "src/agent/tether-task-init", "src/hub/tether-hub",
           "tests/helpers/tether-test-writer", "tests/helpers/tether-redaction-bench"]


def build():
    """Configures (once) and builds the release binaries the benchmarks run."""
    if not os.path.exists(os.path.join(BUILD, "build.ninja")):
        subprocess.run(["meson", "setup", BUILD, "--buildtype=release", "-Dtests=true",
                        "--wrap-mode=nodownload"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    subprocess.run(["ninja", "-C", BUILD] + TARGETS, check=True, stdout=subprocess.DEVNULL)


def binary(name):
    paths = {"tether-agent": "src/agent/tether-agent", "tether-hub": "src/hub/tether-hub",
             "tether-test-writer": "tests/helpers/tether-test-writer",
             "tether-redaction-bench": "tests/helpers/tether-redaction-bench"}
    return os.path.join(BUILD, paths[name])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout_s, what, poll_s=0.005):
    end = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)


class Process:
    """A child with its stderr in a log file, awaited by log line."""

    def __init__(self, argv, log_path, env=None):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        environment = {"PATH": "/usr/bin:/bin"}

        environment.update(env or {})
        self.popen = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                      env=environment, start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_for(self, pattern, timeout_s=15, after=0):
        def found():
            match = re.search(pattern, self.text()[after:])
            if match:
                return match
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.log_path}: exited ({self.popen.returncode}) before "
                                   f"'{pattern}':\n{self.text()[-2000:]}")
            return None
        return wait_until(found, timeout_s, f"'{pattern}' in {self.log_path}")

    def stop(self, signum=signal.SIGTERM, timeout_s=60):
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log.close()
        return self.popen.returncode


def proc_cpu_seconds(pid):
    """User + system CPU time of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_memory_kib(pid):
    """(VmRSS, VmHWM) in KiB: resident now, and the peak."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


class Cluster:
    """tether-hub and one tether-agent ("bench-1") on 127.0.0.1. hub_prefix:
    argv the hub is started through, which must exec it (e.g. taskset -c 0),
    so that hub.pid is the hub's."""

    def __init__(self, agent_settings=None, hub_args=None, keep=False, hub_prefix=None,
                 database_args=None):
        self.dir = tempfile.mkdtemp(prefix="tether-bench-", dir=os.environ.get("TMPDIR", "/tmp"))
        # Run as root, the agent runs tasks as tether-task, whose homes are in its
        # state_dir below: they must pass through this directory (not list it).
        os.chmod(self.dir, 0o711)
        self.keep = keep
        self.hub_dir = os.path.join(self.dir, "hub")
        self.state_dir = os.path.join(self.dir, "agent")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hub_args = hub_args or []
        self.hub_prefix = hub_prefix or []
        self.agent_settings = agent_settings or {}
        # --database and its password file (PrivatePostgres.hub_args): the
        # hub on PostgreSQL instead of hub.db.
        self.database_args = database_args or []
        hub = binary("tether-hub")
        self.agent_token = subprocess.run(
            [hub, "agent", "add", "bench-1", "--data-dir", self.hub_dir] + self.database_args,
            check=True, capture_output=True, text=True).stdout.strip()
        self.admin_token = subprocess.run(
            [hub, "token", "admin", "--data-dir", self.hub_dir] + self.database_args,
            check=True, capture_output=True, text=True).stdout.strip()
        self.token_file = os.path.join(self.dir, "agent.token")
        with open(os.open(self.token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(self.agent_token + "\n")
        self.hub = None
        self.agent = None
        self.hub_starts = 0

    def start_hub(self):
        self.hub_starts += 1
        argv = [binary("tether-hub"), "serve", "--data-dir", self.hub_dir,
                "--listen", f"127.0.0.1:{self.port}"] + self.database_args + self.hub_args
        self.hub = Process(self.hub_prefix + argv,
                           os.path.join(self.dir, f"hub-{self.hub_starts}.log"))
        self.hub.wait_for(r"listening on http")

    def start_agent(self):
        config = os.path.join(self.dir, "agent.conf")
        settings = {"hub_url": self.url, "agent": "bench-1", "token_file": self.token_file,
                    "state_dir": self.state_dir, "log_level": "warning"}
        settings.update(self.agent_settings)
        with open(config, "w") as f:
            for key, value in settings.items():
                f.write(f"{key} = {value}\n")
        self.agent = Process([binary("tether-agent"), "run", "--config", config],
                             os.path.join(self.dir, "agent.log"))
        wait_until(lambda: os.path.exists(os.path.join(self.state_dir, "status.sock")), 15,
                   "the agent's status socket")

    def wait_channel(self):
        """Until the hub lists the agent as connected."""
        def connected():
            agents = self.request("GET", "/api/v1/agents")["agents"]
            return any(a.get("name") == "bench-1" and a.get("connected") for a in agents)
        wait_until(connected, 15, "the agent's result channel")

    def start(self):
        self.start_hub()
        self.start_agent()
        self.wait_channel()
        return self

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": "Bearer " + self.admin_token, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def submit(self, argv):
        return self.request("POST", "/api/v1/tasks",
                            {"agent": "bench-1", "command": {"argv": argv}})["id"]

    def task(self, task_id):
        return self.request("GET", f"/api/v1/tasks/{task_id}")

    def wait_final(self, task_id, timeout_s, poll_s=0.01):
        def ended():
            task = self.task(task_id)
            return task if task.get("final") is not None and task["state"] not in (
                "queued", "dispatched", "running") else None
        return wait_until(ended, timeout_s, f"the final of {task_id}", poll_s)

    def hub_db(self):
        return sqlite3.connect(f"file:{os.path.join(self.hub_dir, 'hub.db')}?mode=ro", uri=True,
                               timeout=10)

    def outbox_size(self):
        """Bytes on disk of the outbox: the database and its WAL."""
        total = 0
        for suffix in ("", "-wal"):
            path = os.path.join(self.state_dir, "outbox.db" + suffix)
            if os.path.exists(path):
                total += os.path.getsize(path)
        return total

    def stop(self):
        for process in (self.agent, self.hub):
            if process is not None:
                process.stop()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            for process in (self.hub, self.agent):
                if process is not None:
                    sys.stderr.write(f"---- {process.log_path} (tail)\n{process.text()[-3000:]}\n")
        self.stop()


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))
    return ordered[index]


def line_latencies_ms(database, task_ids):
    """For lines "<CLOCK_REALTIME us>\\n" written by `tether-test-writer
    wallclock`: per line, milliseconds from the write to the hub storing the
    chunk that completed the line (events.stored_at_us)."""
    latencies = []
    for task_id in task_ids:
        rows = database.execute(
            "SELECT data, stored_at_us FROM events WHERE task_id = ? AND kind = 'output' "
            "AND stream = 'stdout' ORDER BY seq", (task_id,)).fetchall()
        pending = b""
        for data, stored_at_us in rows:
            pending += bytes(data)
            *complete, pending = pending.split(b"\n")
            for line in complete:
                latencies.append((stored_at_us - int(line)) / 1000.0)
    return latencies


def parse_result(output):
    """The figures of a `RESULT {json}` line (the last one) in `output`."""
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise ValueError("no RESULT line in:\n" + output)
    return json.loads(lines[-1][len("RESULT "):])


def emit(figures):
    """Prints the figures as JSON on the last line (for run-all)."""
    print("RESULT " + json.dumps(figures))


class PrivatePostgres:
    """A private PostgreSQL 15 server (Debian's postgresql-15 binaries) in a
    temporary directory on 127.0.0.1, password authentication, owned by
    `nobody` when we are root (the server refuses root); removed on stop().
    database(name) makes a database and returns the hub's arguments for it.
    preload: server libraries to load at start (e.g. pg_stat_statements)."""

    BIN = "/usr/lib/postgresql/15/bin/"

    def __init__(self, preload=()):
        self.dir = tempfile.mkdtemp(prefix="tether-bench-pg-", dir=os.environ.get("TMPDIR", "/tmp"))
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.run_dir = os.path.join(self.dir, "run")
        os.mkdir(self.run_dir)
        self.password = os.urandom(12).hex()
        self.password_file = os.path.join(self.dir, "password")
        with open(os.open(self.password_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(self.password + "\n")
        initdb_password = os.path.join(self.run_dir, "initdb.pw")
        with open(initdb_password, "w") as f:
            f.write(self.password + "\n")
        self.as_nobody = os.geteuid() == 0
        if self.as_nobody:
            subprocess.run(["chown", "-R", "nobody", self.run_dir], check=True)
            os.chmod(self.dir, 0o777)
        self.port = free_port()
        self._owner([self.BIN + "initdb", "--no-sync", "--no-locale", "-E", "UTF8", "-U", "tether",
                     "-A", "scram-sha-256", "--pwfile=" + initdb_password, "-D", self.data])
        self._owner([self.BIN + "pg_ctl", "-D", self.data, "-l", os.path.join(self.run_dir, "log"),
                     "-w", "-t", "60", "-o",
                     f"-h 127.0.0.1 -p {self.port} -k {self.run_dir} -c fsync=on"
                     + (" -c shared_preload_libraries=" + ",".join(preload) if preload else ""),
                     "start"])

    def _owner(self, argv):
        prefix = ["runuser", "-u", "nobody", "--"] if self.as_nobody else []
        subprocess.run(prefix + argv, check=True, capture_output=True, cwd=self.run_dir)

    def psql(self, database, sql):
        """Runs SQL in DATABASE as the owner; its rows, unaligned, '|' between fields."""
        env = dict(os.environ, PGPASSWORD=self.password)
        return subprocess.run(["psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p",
                               str(self.port), "-U", "tether", "-d", database, "-c", sql],
                              check=True, capture_output=True, text=True, env=env).stdout

    def database(self, name):
        self.psql("postgres", f"CREATE DATABASE {name}")
        return ["--database", f"postgresql://tether@127.0.0.1:{self.port}/{name}",
                "--database-password-file", self.password_file]

    def server_pids(self):
        """The server's processes (postmaster and backends)."""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        children = []
        for entry in os.listdir("/proc"):  # not pgrep: procps is not in a minimal root
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # ended meanwhile
            if parent == postmaster:
                children.append(int(entry))
        return [postmaster] + children

    def restart(self):
        """pg_ctl restart -m fast: every session ends; back when it accepts. The
        log file again (-l): without it the server would write to our pipe and
        keep it open."""
        self._owner([self.BIN + "pg_ctl", "-D", self.data, "-l", os.path.join(self.run_dir, "log"),
                     "-m", "fast", "-w", "-t", "60", "restart"])

    def stop(self):
        try:
            self._owner([self.BIN + "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
