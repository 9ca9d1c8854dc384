#!/usr/bin/env python3
"""A fleet of simulated agents in one process (asyncio), written from
docs/protocol.md, not from src/: an independent agent side to measure the
hub with (bench/fanout; the idle fleet of issue [6/8]). Each agent is a
SimulatedAgent (simulated_agent.py): a result channel and a parked long
poll, so N agents hold 2N sockets.

    fleet_simulator.py register --hub-url URL --registration-token-file F \\
        --tokens-dir DIR --agents N [--prefix sim-] [--clients 16]
    fleet_simulator.py run --hub-url URL --tokens-dir DIR [--agents N]
        [--first K] [--source-address 127.0.0.2] [--labels 'fleet=bench,n={i}']
        [--output-bytes N] [--run-ms N] [--ping-interval-s S] [--ping-timeout-s S]
        [--poll-wait-s S] [--poll-grace-s S] [--ready-partial] [--control]

`register` makes N agents through POST /api/v1/agents/register (one
registration token, CLIENTS kept-alive connections) and writes each token
to DIR/NAME.token (0600). `run` starts an agent per token file (sorted by
name; N of them from the K-th), each sending the labels ({i}: its index)
in its hello, its connections from the source address (loopback answers on
all of 127/8: several simulators look like several hosts), and prints
`READY {json}` when every hello is acked (with --ready-partial, also when
--ready-timeout-s passes first: "ready" says how many). With --control it
then reads commands on stdin, one a line, and answers on stdout:

    stats  ->  STATS {json}   counters since the last reset (FleetStats)
    reset  ->  OK reset       a new measurement window
    ping   ->  PING {json}    one WebSocket ping from every agent: round trips
    pings  ->  PINGS {json}   the window's keepalive pings, each of them:
                              rtts_ms (answered), pending_ms (no pong yet:
                              their age), lost and cut counts
    finals ->  FINALS {json}  {task_id: when its final was acked verified}
                              for the window's finals
    quit   ->  (stops)        so does the end of stdin

Every agent pings its channel every --ping-interval-s (from a random
point of the first interval), waiting --ping-timeout-s for each pong. A
long poll that the hub closes without an answer, or leaves unanswered for
--poll-wait-s + --poll-grace-s, is counted in polls_unanswered, apart from
the answers (poll_statuses).

Without --control it runs until SIGINT/SIGTERM, printing STATS every
--report-s seconds. Times in the answers are time.monotonic() seconds
(CLOCK_MONOTONIC, the same clock in every process of the host).

Python's standard library only. In another script: `FleetProcess` (a
subprocess with the control protocol), or `Fleet` in an asyncio loop.
"""

import argparse
import asyncio
import collections
import hashlib
import json
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_client import HttpConnection, HttpError  # noqa: E402
from fleet_stats import FleetStats  # noqa: E402
from simulated_agent import SimulatedAgent  # noqa: E402

CHUNK_BYTES = 64 * 1024  # docs/protocol.md 2.1: 64 KiB recommended


def raise_open_files_limit():
    """The soft RLIMIT_NOFILE up to the hard one (2 sockets per agent)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Output:
    """The stdout every simulated command writes: its chunks, size, digest."""

    def __init__(self, size):
        line = b"fleet simulator output line, 64 bytes long, for the digest...\n"
        data = (line * (size // len(line) + 1))[:size]
        self.size = size
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.chunks = [(offset, data[offset:offset + CHUNK_BYTES].decode())
                       for offset in range(0, size, CHUNK_BYTES)]


class Settings:
    """What every agent of the fleet shares."""

    def __init__(self, hub_url, output_bytes=0, run_s=0.0, poll_wait_s=25, ping_interval_s=15,
                 max_concurrent=4, source_address=None, ping_timeout_s=30, poll_grace_s=15):
        url = urllib.parse.urlsplit(hub_url)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"hub url: http://HOST:PORT expected (no TLS here), got {hub_url!r}")
        self.host, self.port = url.hostname, url.port or 80
        self.output = Output(output_bytes) if output_bytes else None
        self.empty_output = Output(0)
        self.run_s = run_s
        self.poll_wait_s = poll_wait_s
        self.ping_interval_s = ping_interval_s
        self.max_concurrent = max_concurrent
        self.source_address = source_address
        self.ping_timeout_s = ping_timeout_s
        self.poll_grace_s = poll_grace_s


class Fleet:
    """N simulated agents in the running asyncio loop. agents: a list of
    (name, token, labels)."""

    def __init__(self, settings, agents, connects_at_once=64):
        self.settings = settings
        self.stats = FleetStats()
        gate = asyncio.Semaphore(connects_at_once)  # the hub's accept queue is finite
        self.agents = [SimulatedAgent(name, token, labels, settings, self.stats, gate)
                       for name, token, labels in agents]

    async def start(self, timeout_s=120, partial=False):
        """Starts every agent; returns how many have their hello acked, once
        each has, or after timeout_s with partial; otherwise raises
        TimeoutError naming how many have not. (Those keep trying.)"""
        for agent in self.agents:
            agent.start()
        waiting = [asyncio.create_task(agent.ready.wait()) for agent in self.agents]
        done, pending = await asyncio.wait(waiting, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending and not partial:
            raise TimeoutError(f"{len(pending)} of {len(self.agents)} agents had no "
                               f"hub.hello_ack within {timeout_s} s: {self.stats.snapshot()}")
        return len(done)

    async def stop(self):
        await asyncio.gather(*(agent.stop() for agent in self.agents))

    def connected(self):
        return sum(1 for agent in self.agents if agent.channel is not None)

    async def ping_round(self, timeout_s=10):
        """A ping from every agent at once: round trips in ms, and failures."""
        rtts = await asyncio.gather(*(agent.ping(timeout_s) for agent in self.agents))
        answered = sorted(rtt for rtt in rtts if rtt is not None)
        summary = {"agents": len(rtts), "answered": len(answered)}
        if answered:
            summary.update({"p50_ms": answered[len(answered) // 2],
                            "p99_ms": answered[min(len(answered) - 1,
                                                   int(len(answered) * 0.99))],
                            "max_ms": answered[-1]})
        return summary


def load_agents(tokens_dir, count=None, labels_template=None, first=0):
    """(name, token, labels) for COUNT token files NAME.token of the
    directory, by name, from the FIRST-th; labels from 'k=v,k2={i}' ({i}:
    the index)."""
    names = sorted(f[:-len(".token")] for f in os.listdir(tokens_dir) if f.endswith(".token"))
    if count is not None:
        if first + count > len(names):
            raise ValueError(f"tokens dir {tokens_dir}: {len(names)} tokens, {count} from "
                             f"the {first}th asked for")
        names = names[first:first + count]
    agents = []
    for index, name in enumerate(names):
        with open(os.path.join(tokens_dir, name + ".token")) as f:
            token = f.read().strip()
        labels = {}
        for pair in filter(None, (labels_template or "").split(",")):
            key, _, value = pair.partition("=")
            labels[key.strip()] = value.strip().replace("{i}", str(index))
        agents.append((name, token, labels))
    return agents


async def register_agents(hub_url, registration_token, names, clients=16):
    """{name: token} for NAMES registered through POST /api/v1/agents/register
    on CLIENTS kept-alive connections; raises RuntimeError on any refusal."""
    url = urllib.parse.urlsplit(hub_url)
    todo = collections.deque(names)
    tokens = {}

    async def client():
        connection = HttpConnection(url.hostname, url.port or 80)
        try:
            while todo:
                name = todo.popleft()
                status, _, body = await connection.request(
                    "POST", "/api/v1/agents/register",
                    {"Authorization": "Bearer " + registration_token,
                     "Content-Type": "application/json"}, json.dumps({"name": name}).encode())
                if status != 201:
                    raise RuntimeError(f"registering {name}: {status} {body[:300]!r}")
                tokens[name] = json.loads(body)["token"]
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return tokens


def write_tokens(tokens_dir, tokens):
    os.makedirs(tokens_dir, mode=0o700, exist_ok=True)
    for name, token in tokens.items():
        path = os.path.join(tokens_dir, name + ".token")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(token + "\n")


class FleetProcess:
    """`fleet_simulator.py run --control` as a child process, for a
    synchronous bench: start() waits for READY, command() for the answer."""

    def __init__(self, argv, log_path, cpus=None):
        """cpus: the CPUs it may run on (None: any)."""
        self.log = open(log_path, "wb")
        self.popen = subprocess.Popen([sys.executable, os.path.abspath(__file__), "run",
                                       "--control"] + argv, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self.log, text=True,
                                      start_new_session=True)
        if cpus is not None:
            os.sched_setaffinity(self.popen.pid, cpus)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _expect(self, prefix, timeout_s):
        end = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"fleet simulator: no {prefix} within {timeout_s} s") from None
            if line is None:
                raise RuntimeError(f"fleet simulator exited ({self.popen.wait()}) before {prefix}")
            if line.startswith(prefix):
                return json.loads(line[len(prefix):]) if prefix != "OK" else line

    def start(self, timeout_s=180):
        return self._expect("READY ", timeout_s)

    def command(self, word, timeout_s=60):
        self.send(word)
        return self.answer(word, timeout_s)

    def send(self, word):
        """A command without waiting for its answer (answer() reads it)."""
        self.popen.stdin.write(word + "\n")
        self.popen.stdin.flush()

    def answer(self, word, timeout_s=60):
        prefix = {"stats": "STATS ", "reset": "OK", "ping": "PING ", "pings": "PINGS ",
                  "finals": "FINALS "}[word]
        return self._expect(prefix, timeout_s)

    def stop(self, timeout_s=30):
        if self.popen.poll() is None:
            try:
                self.popen.stdin.write("quit\n")
                self.popen.stdin.close()
                self.popen.wait(timeout_s)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log.close()
        return self.popen.returncode


async def serve_control(fleet):
    """The stdin/stdout control protocol (module docstring)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        word = (await reader.readline()).decode().strip()
        if word in ("", "quit"):
            return
        if word == "stats":
            print("STATS " + json.dumps(dict(fleet.stats.snapshot(), connected=fleet.connected())),
                  flush=True)
        elif word == "reset":
            fleet.stats.reset()
            print("OK reset", flush=True)
        elif word == "ping":
            print("PING " + json.dumps(await fleet.ping_round()), flush=True)
        elif word == "pings":
            print("PINGS " + json.dumps(fleet.stats.pings()), flush=True)
        elif word == "finals":
            print("FINALS " + json.dumps(fleet.stats.finals_acked_at), flush=True)
        else:
            print(f"ERROR unknown command {word!r}", flush=True)


async def run(args):
    limit = raise_open_files_limit()
    agents = load_agents(args.tokens_dir, args.agents, args.labels, args.first)
    if 2 * len(agents) + 64 > limit:
        raise SystemExit(f"fleet_simulator: {len(agents)} agents need {2 * len(agents)} sockets; "
                         f"the open files limit is {limit}")
    settings = Settings(args.hub_url, args.output_bytes, args.run_ms / 1000, args.poll_wait_s,
                        args.ping_interval_s, source_address=args.source_address,
                        ping_timeout_s=args.ping_timeout_s, poll_grace_s=args.poll_grace_s)
    fleet = Fleet(settings, agents)
    began = time.monotonic()
    try:
        ready = await fleet.start(args.ready_timeout_s, args.ready_partial)
        print("READY " + json.dumps({"agents": len(agents), "ready": ready,
                                     "seconds": time.monotonic() - began}), flush=True)
        if args.control:
            await serve_control(fleet)
        else:
            stop = asyncio.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().add_signal_handler(signum, stop.set)
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), args.report_s)
                except asyncio.TimeoutError:
                    print("STATS " + json.dumps(fleet.stats.snapshot()), flush=True)
    finally:
        await fleet.stop()


async def register(args):
    with open(args.registration_token_file) as f:
        registration_token = f.read().strip()
    names = [f"{args.prefix}{index:05d}" for index in range(args.agents)]
    began = time.monotonic()
    tokens = await register_agents(args.hub_url, registration_token, names, args.clients)
    write_tokens(args.tokens_dir, tokens)
    print(json.dumps({"registered": len(tokens), "seconds": time.monotonic() - began}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    reg = commands.add_parser("register")
    reg.add_argument("--hub-url", required=True)
    reg.add_argument("--registration-token-file", required=True)
    reg.add_argument("--tokens-dir", required=True)
    reg.add_argument("--agents", type=int, required=True)
    reg.add_argument("--prefix", default="sim-")
    reg.add_argument("--clients", type=int, default=16)
    go = commands.add_parser("run")
    go.add_argument("--hub-url", required=True)
    go.add_argument("--tokens-dir", required=True)
    go.add_argument("--agents", type=int, help="N token files (default: all)")
    go.add_argument("--first", type=int, default=0, help="from the K-th token file, by name")
    go.add_argument("--source-address", help="the local address of every connection")
    go.add_argument("--labels", default="", help="k=v,... sent in each hello; {i}: the index")
    go.add_argument("--output-bytes", type=int, default=0, help="stdout of every task")
    go.add_argument("--run-ms", type=float, default=0, help="how long every task runs")
    go.add_argument("--ping-interval-s", type=float, default=15, help="0: no pings")
    go.add_argument("--ping-timeout-s", type=float, default=30, help="a ping without a pong "
                    "this long is lost (the hub hangs up after 45 s without one)")
    go.add_argument("--poll-wait-s", type=int, default=25)
    go.add_argument("--poll-grace-s", type=float, default=15, help="a poll unanswered for wait + "
                    "this long is given up (counted in polls_unanswered)")
    go.add_argument("--ready-timeout-s", type=float, default=120)
    go.add_argument("--ready-partial", action="store_true",
                    help="READY after --ready-timeout-s even if some hellos are not acked")
    go.add_argument("--report-s", type=float, default=10)
    go.add_argument("--control", action="store_true", help="commands on stdin (see above)")
    args = parser.parse_args()
    try:
        asyncio.run(run(args) if args.command == "run" else register(args))
    except (HttpError, RuntimeError, TimeoutError, ValueError, OSError) as error:
        sys.exit(f"fleet_simulator: {error}")


if __name__ == "__main__":
    main()
