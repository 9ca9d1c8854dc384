"""The counters of a fleet of simulated agents (fleet_simulator.py) over a
measurement window. Times are time.monotonic() seconds."""

import collections
import sys
import time


class FleetStats:
    """Counters of a measurement window, shared by every agent (one thread).
    in_flight (dispatched to an agent, its final not yet sent) is state and
    carries over a reset; max_in_flight restarts from it. So do the pings
    waiting for their pong; those sent before the reset are not counted."""

    def __init__(self):
        self.in_flight = 0
        self.faults_shown = 0
        self.pings_waiting = {}  # key -> time.monotonic() it was sent
        self.next_ping_key = 0
        self.reset()

    def reset(self):
        self.window_began = time.monotonic()
        self.max_in_flight = self.in_flight
        self.tasks_dispatched = self.finals_sent = self.finals_acked = self.finals_verified = 0
        self.finals_held = self.discarded = self.reconnects = self.poll_failures = 0
        self.first_dispatch_at = self.last_dispatch_at = None
        self.last_final_sent_at = self.last_final_acked_at = None
        self.statuses_sent, self.closes = collections.Counter(), collections.Counter()
        self.connect_failures, self.errors = collections.Counter(), collections.Counter()
        self.frames_received, self.frames_refused = collections.Counter(), collections.Counter()
        self.poll_statuses, self.faults = collections.Counter(), collections.Counter()
        self.ping_rtts_ms, self.ready_at = [], []
        self.pings_lost = self.pings_cut = self.lines_written = 0
        self.polls_unanswered = collections.Counter()
        self.finals_acked_at = {}  # task_id -> time.monotonic(), verified finals

    def ping_started(self):
        """A key for ping_ended."""
        self.next_ping_key += 1
        self.pings_waiting[self.next_ping_key] = time.monotonic()
        return self.next_ping_key

    def ping_ended(self, key, rtt_ms, outcome):
        """outcome: answered (rtt_ms), lost or cut."""
        sent_at = self.pings_waiting.pop(key, None)
        if sent_at is None or sent_at < self.window_began:
            return
        if outcome == "answered":
            self.ping_rtts_ms.append(rtt_ms)
        elif outcome == "lost":
            self.pings_lost += 1
        else:
            self.pings_cut += 1

    def pings(self):
        now = time.monotonic()
        return {"rtts_ms": self.ping_rtts_ms, "lost": self.pings_lost, "cut": self.pings_cut,
                "pending_ms": [(now - sent_at) * 1000 for sent_at in self.pings_waiting.values()
                               if sent_at >= self.window_began]}

    def poll_failed(self, kind):
        """A long poll with no answer: kind as HttpError's."""
        self.poll_failures += 1
        self.polls_unanswered[kind] += 1

    def task_dispatched(self):
        now = time.monotonic()
        self.tasks_dispatched += 1
        self.first_dispatch_at = self.first_dispatch_at or now
        self.last_dispatch_at = now
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def task_ended(self):
        self.in_flight -= 1

    def final_sent(self, status):
        self.finals_sent += 1
        self.statuses_sent[status] += 1
        self.last_final_sent_at = time.monotonic()

    def final_acked(self, verified, task_id):
        self.finals_acked += 1
        self.finals_verified += 1 if verified else 0
        self.last_final_acked_at = time.monotonic()
        if verified:
            self.finals_acked_at[task_id] = self.last_final_acked_at

    def note_fault(self, agent, error):
        self.faults[type(error).__name__] += 1
        if self.faults_shown < 5:
            self.faults_shown += 1
            print(f"fleet_simulator: {agent}: {error!r}", file=sys.stderr, flush=True)

    def snapshot(self):
        figures = {key: value for key, value in vars(self).items()
                   if key not in ("ping_rtts_ms", "ready_at", "faults_shown", "pings_waiting",
                                  "next_ping_key", "finals_acked_at")}
        rtts = sorted(self.ping_rtts_ms)
        figures["pings"] = len(rtts)
        if rtts:
            figures["ping_rtt_ms"] = {"p50": rtts[len(rtts) // 2],
                                      "p99": rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))],
                                      "max": rtts[-1]}
        figures["now"] = time.monotonic()
        return figures
