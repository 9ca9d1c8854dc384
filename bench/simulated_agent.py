"""One simulated agent, written from docs/protocol.md alone: a result
channel (section 2, frames of section 4) and a long poll for tasks
(section 3). A task's "command" is not run: the agent answers as if it had
run and written the fleet's configured stdout bytes (none for `true`), with
a final whose byte counts and SHA-256 the hub can verify (sections 4.1, 6).

It keeps what it sent until the hub acks it, so a reconnect replays as an
agent must (hello lists, hello_ack's resume / finals_held / discard); it
answers task.cancel, hub.wake, errors and pings.

One command is simulated rather than answered at once, to load the hub's
ingest path: fleet-stream (simulated_stream.py).
"""

import asyncio
import json
import os
import random
import time

from http_client import HttpConnection, HttpError
from keepalive import Keepalive
from simulated_stream import stream_lines, stream_request
from websocket_client import WebSocket, WebSocketClosed, WebSocketError

HELLO_ACK_WAIT_S = 30  # docs/protocol.md 4.1


def utc_now():
    """UTC now as the protocol writes it: 2026-11-22T05:12:00.123Z."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


class Attempt:
    """What the agent holds of one attempt until the hub acks its final."""

    def __init__(self, task):
        self.task_id = task["task_id"]
        self.attempt_id = task["attempt_id"]
        self.started = None  # the task.started frame, until acked
        self.outputs = {}  # (stream, seq) -> task.output frame, until acked
        self.final = None  # the task.final frame, until acked
        self.cancelled = asyncio.Event()
        self.cancel_reason = ""
        self.runner = None
        self.ended = False  # counted out of the fleet's dispatched-and-not-finalled
        self.retry_delay_s = 0.1


class SimulatedAgent:
    """Agent NAME with TOKEN; `settings` and `stats` are the fleet's."""

    def __init__(self, name, token, labels, settings, stats, connect_gate):
        self.name = name
        self.auth = {"Authorization": "Bearer " + token}
        self.labels = labels
        self.settings = settings
        self.stats = stats
        self.connect_gate = connect_gate
        self.instance = os.urandom(8).hex()
        self.attempts = {}
        self.channel = None  # the WebSocket, once its hello is acked
        self.ready = asyncio.Event()  # the first hello_ack
        self.wake = asyncio.Event()
        self.slot_free = asyncio.Event()
        self.hellos = 0
        self.keepalive = Keepalive(settings, stats)
        self.loops = []
        self.background = set()  # asyncio keeps only weak references to tasks
        self.poll = HttpConnection(settings.host, settings.port, settings.source_address)

    def _spawn(self, coroutine):
        task = asyncio.create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def start(self):
        self.loops = [asyncio.create_task(self._channel_loop()),
                      asyncio.create_task(self._poll_loop())]

    async def stop(self):
        if self.channel is not None:
            await self.channel.close(1001, "fleet simulator stopping")
        for loop in self.loops:
            loop.cancel()
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.loops, *self.background, return_exceptions=True)
        self.poll.close()

    # ---- the result channel

    async def _channel_loop(self):
        backoff_s = 0.1
        while True:
            channel = None
            try:
                async with self.connect_gate:
                    channel = await WebSocket.connect(
                        self.settings.host, self.settings.port,
                        f"/api/v1/agents/{self.name}/channel", self.auth,
                        local_address=self.settings.source_address)
                channel.on_pong = self.keepalive.on_pong
                await self._converse(channel)
            except WebSocketClosed as closed:
                self.stats.closes[str(closed.code)] += 1
                backoff_s = 0.1 if self.channel is not None else backoff_s
            except (WebSocketError, OSError, asyncio.TimeoutError,
                    asyncio.IncompleteReadError) as error:
                self.stats.connect_failures[type(error).__name__] += 1
            except Exception as error:  # noqa: BLE001 a simulator bug: count, say, reconnect
                self.stats.note_fault(self.name, error)
            finally:
                if channel is not None:
                    channel.writer.close()
                self.channel = None
            self.stats.reconnects += 1
            await asyncio.sleep(random.uniform(0.05, backoff_s))
            backoff_s = min(backoff_s * 2, 10)

    async def _converse(self, channel):
        self.hellos += 1
        hello = self._hello()
        await channel.send_text(json.dumps(hello, separators=(",", ":")))
        watchdog = asyncio.get_running_loop().call_later(
            HELLO_ACK_WAIT_S, self._give_up_without_ack, channel)
        pinger = asyncio.create_task(self.keepalive.run(channel))
        try:
            while True:
                await self._on_message(channel, await channel.receive())
        finally:
            watchdog.cancel()
            pinger.cancel()

    def _give_up_without_ack(self, channel):
        if self.channel is not channel:
            self.stats.errors["no_hello_ack"] += 1
            self._spawn(channel.close(1002, "no hub.hello_ack within 30 s"))

    def _hello(self):
        outbox = {}
        for (stream, seq), frame in self.attempts_outputs():
            key = (frame["task_id"], frame["attempt_id"], stream)
            first, last = outbox.get(key, (seq, seq))
            outbox[key] = (min(first, seq), max(last, seq))
        held = [frame for _, frame in self.attempts_outputs()]
        return {"v": 1, "type": "agent.hello",
                "message_id": f"hello:{self.name}:{self.instance}:{self.hellos}",
                "agent_id": self.name, "sent_at": utc_now(), "version": "0.0.0-fleet-simulator",
                "capabilities": [], "instance": self.instance, "labels": self.labels,
                "running": [{"task_id": a.task_id, "attempt_id": a.attempt_id}
                            for a in self.attempts.values() if a.final is None],
                "outbox": [{"task_id": t, "attempt_id": a, "stream": s, "first_seq": first,
                            "last_seq": last} for (t, a, s), (first, last) in outbox.items()],
                "unacked_finals": [{"task_id": a.task_id, "attempt_id": a.attempt_id}
                                   for a in self.attempts.values() if a.final is not None],
                "outbox_rows": len(held),
                "outbox_bytes": sum(len(frame["data"]) for frame in held)}

    def attempts_outputs(self):
        for attempt in self.attempts.values():
            yield from attempt.outputs.items()

    async def _on_message(self, channel, text):
        try:
            frame = json.loads(text)
            kind = frame["type"]
            if not isinstance(frame, dict) or not isinstance(kind, str):
                raise TypeError("type")
        except (ValueError, TypeError, KeyError) as error:
            await self._refuse(channel, "invalid_frame", f"frame: {error}", None)
            return
        if frame.get("v") != 1:
            await self._refuse(channel, "unsupported_version", f"v {frame.get('v')!r}", frame)
            await channel.close(1002, "unsupported version")
            return
        handler = {"hub.hello_ack": self._on_hello_ack, "ack": self._on_ack,
                   "error": self._on_error, "task.cancel": self._on_cancel,
                   "hub.wake": self._on_wake}.get(kind)
        if handler is None:
            await self._refuse(channel, "unknown_type", f"type {kind!r}", frame)
            return
        self.stats.frames_received[kind] += 1
        await handler(channel, frame)

    async def _refuse(self, channel, code, message, frame):
        """docs/protocol.md 4.3: an error frame, not retryable."""
        self.stats.frames_refused[code] += 1
        reply = {"v": 1, "type": "error", "message_id": f"error:{self.name}:{os.urandom(6).hex()}",
                 "agent_id": self.name, "sent_at": utc_now(), "code": code,
                 "message": message, "retryable": False}
        if isinstance(frame, dict) and isinstance(frame.get("message_id"), str):
            reply["related_message_id"] = frame["message_id"]
        await channel.send_text(json.dumps(reply))

    async def _on_hello_ack(self, channel, frame):
        for resume in frame.get("resume") or []:
            attempt = self.attempts.get(resume.get("attempt_id"))
            if attempt is not None:
                for key in [k for k in attempt.outputs if k[0] == resume.get("stream")
                            and k[1] < resume.get("next_seq", 0)]:
                    del attempt.outputs[key]
        for attempt_id in frame.get("finals_held") or []:
            if attempt_id in self.attempts:
                self.stats.finals_held += 1
                self._forget(self.attempts[attempt_id])
        for discard in frame.get("discard") or []:
            if discard.get("attempt_id") in self.attempts:
                self.stats.discarded += 1
                self._forget(self.attempts[discard["attempt_id"]])
        self.channel = channel
        if not self.ready.is_set():
            self.stats.ready_at.append(time.monotonic())
            self.ready.set()
        for attempt in list(self.attempts.values()):
            await self._replay(attempt)

    async def _replay(self, attempt, stream=None, after_seq=0):
        """Sends again what the hub has not acked: started, output (of one
        stream from a seq on, or all), the final last."""
        frames = [attempt.started] if attempt.started is not None and stream is None else []
        frames += [attempt.outputs[key] for key in sorted(attempt.outputs)
                   if stream is None or (key[0] == stream and key[1] > after_seq)]
        frames += [attempt.final] if attempt.final is not None else []
        for frame in frames:
            if not await self._send(frame):
                return

    async def _send(self, frame):
        """True when written on a hello-acked channel; otherwise the frame
        stays held and goes with the replay after the next hello_ack."""
        channel = self.channel
        if channel is None:
            return False
        frame["sent_at"] = utc_now()
        try:
            await channel.send_text(json.dumps(frame, separators=(",", ":")))
            return True
        except (WebSocketClosed, OSError):
            return False

    async def _on_ack(self, channel, frame):
        attempt = self.attempts.get(frame.get("attempt_id"))
        if attempt is None:
            return
        acked = frame.get("acked")
        if acked == "task.output":
            through = frame.get("through_seq", 0)
            for key in [k for k in attempt.outputs if k[0] == frame.get("stream")
                        and k[1] <= through]:
                del attempt.outputs[key]
        elif acked == "task.started":
            attempt.started = None
        elif acked == "task.final" and attempt.final is not None:
            self.stats.final_acked(frame.get("verified") is True, attempt.task_id)
            self._forget(attempt)

    async def _on_error(self, channel, frame):
        code = frame.get("code")
        self.stats.errors[str(code)] += 1
        attempt = self.attempts.get(frame.get("attempt_id"))
        if attempt is None:
            return
        if code in ("unknown_attempt", "attempt_discarded", "final_conflict"):
            self._forget(attempt)
        elif frame.get("retryable") is True:
            self._spawn(self._retry(attempt, frame))
        else:
            related = frame.get("related_message_id")
            for key, output in list(attempt.outputs.items()):
                if output["message_id"] == related:
                    del attempt.outputs[key]

    async def _retry(self, attempt, frame):
        """docs/protocol.md 5: resend from highest_accepted_seq + 1, waiting
        100 ms doubling to 30 s when sent back again and again."""
        delay_s, attempt.retry_delay_s = attempt.retry_delay_s, min(30, attempt.retry_delay_s * 2)
        await asyncio.sleep(delay_s)
        if attempt.attempt_id in self.attempts:
            await self._replay(attempt, frame.get("stream"), frame.get("highest_accepted_seq", 0))

    async def _on_cancel(self, channel, frame):
        attempt = self.attempts.get(frame.get("attempt_id"))
        if attempt is not None and attempt.final is None:
            attempt.cancel_reason = str(frame.get("reason", ""))
            attempt.cancelled.set()

    async def _on_wake(self, channel, frame):
        self.wake.set()

    def _forget(self, attempt):
        self.attempts.pop(attempt.attempt_id, None)
        if attempt.runner is not None and attempt.final is None:
            attempt.runner.cancel()
        self._end(attempt)

    def _end(self, attempt):
        if not attempt.ended:
            attempt.ended = True
            self.stats.task_ended()
            self.slot_free.set()

    async def ping(self, timeout_s=10):
        """One WebSocket ping on the channel: its round trip in ms, or None
        (no channel, or no pong in time)."""
        channel = self.channel
        return None if channel is None else await self.keepalive.ping(channel, timeout_s)

    # ---- task pickup and the simulated command

    async def _poll_loop(self):
        await self.ready.wait()
        wait_s = self.settings.poll_wait_s
        path = f"/api/v1/agents/{self.name}/tasks/next?wait={wait_s}&instance={self.instance}"
        backoff_s = 1
        while True:
            while sum(1 for a in self.attempts.values() if a.final is None) >= \
                    self.settings.max_concurrent:
                self.slot_free.clear()
                await self.slot_free.wait()
            began = time.monotonic()
            self.wake.clear()
            try:
                # No resend: a poll the hub closes unanswered is counted, not hidden.
                status, headers, body = await self.poll.request(
                    "GET", path, self.auth, timeout_s=wait_s + self.settings.poll_grace_s,
                    resend=False)
            except HttpError as error:
                self.stats.poll_failed(error.kind)
                await asyncio.sleep(random.uniform(0, backoff_s))  # operations.md: 1 to 60 s
                backoff_s = min(backoff_s * 2, 60)
                continue
            backoff_s = 1
            self.stats.poll_statuses[str(status)] += 1
            if status == 200:
                self._take(body)
            elif status == 204:
                rest_s = 1 - (time.monotonic() - began)  # docs/protocol.md 3
                if rest_s > 0:
                    try:
                        await asyncio.wait_for(self.wake.wait(), rest_s)
                    except asyncio.TimeoutError:
                        pass
            else:
                retry_after = headers.get("retry-after", "")
                await asyncio.sleep(int(retry_after) if retry_after.isdigit() else backoff_s)

    def _take(self, body):
        try:
            task = json.loads(body)
            if not isinstance(task.get("task_id"), str) or not isinstance(task.get("attempt_id"), str):
                raise ValueError("task_id or attempt_id")
        except (ValueError, AttributeError):
            self.stats.errors["undecodable_task"] += 1
            return
        if task["attempt_id"] in self.attempts:
            return  # the same dispatch again: already running
        attempt = Attempt(task)
        self.attempts[attempt.attempt_id] = attempt
        self.stats.task_dispatched()
        attempt.runner = self._spawn(self._run(attempt, task))

    async def _run(self, attempt, task):
        ids = {"agent_id": self.name, "task_id": attempt.task_id, "attempt_id": attempt.attempt_id}
        started_at = utc_now()
        problem = self._undecodable(task)
        stream = None
        if problem is None:
            stream, problem = stream_request(task)
        status, exit_code, signal, error, output = "succeeded", 0, None, None, self.settings.output
        written = None  # what a fleet-stream command wrote
        if problem is None:
            attempt.started = {"v": 1, "type": "task.started", "message_id":
                               f"{attempt.attempt_id}:started", "pid": 4242,
                               "started_at": started_at, **ids}
            await self._send(dict(attempt.started))
            if stream is not None:
                written, output = await stream_lines(attempt, ids, stream, self._send,
                                                     self.stats), None
            elif self.settings.run_s or attempt.cancelled.is_set():
                try:
                    await asyncio.wait_for(attempt.cancelled.wait(), self.settings.run_s)
                except asyncio.TimeoutError:
                    pass
            if attempt.cancelled.is_set():
                status, exit_code, signal, output = "cancelled", None, 15, None
                error = f"cancelled: {attempt.cancel_reason}"
        else:
            status, exit_code, error, output = "rejected", None, problem, None
        for seq, (offset, data) in enumerate(output.chunks if output else [], start=1):
            frame = {"v": 1, "type": "task.output", "message_id":
                     f"{attempt.attempt_id}:stdout:{seq}", "stream": "stdout", "seq": seq,
                     "offset": offset, "data": data, "encoding": "utf8", **ids}
            attempt.outputs[("stdout", seq)] = frame
            await self._send(dict(frame))
        empty = self.settings.empty_output
        stdout = written or output or empty
        attempt.final = {"v": 1, "type": "task.final", "message_id": f"{attempt.attempt_id}:final",
                         "status": status, "exit_code": exit_code, "signal": signal,
                         "started_at": started_at, "finished_at": utc_now(),
                         "stdout": {"bytes": stdout.size, "sha256": stdout.sha256,
                                    "dropped_bytes": 0},
                         "stderr": {"bytes": 0, "sha256": empty.sha256, "dropped_bytes": 0},
                         "error": error, **ids}
        if task.get("secrets"):
            attempt.final["redactions"] = {"stdout": 0, "stderr": 0}
        self.stats.final_sent(status)
        self._end(attempt)
        await self._send(dict(attempt.final))

    @staticmethod
    def _undecodable(task):
        """docs/protocol.md 3: the field that makes a task undecodable, or None."""
        command = task.get("command")
        if not isinstance(command, dict):
            return "command: missing or not an object"
        argv, shell = command.get("argv"), command.get("shell")
        if (argv is None) == (shell is None):
            return "command: exactly one of argv or shell"
        if argv is not None and (not isinstance(argv, list) or not argv or
                                 not all(isinstance(a, str) for a in argv)):
            return "command.argv: a non-empty array of strings"
        if shell is not None and not isinstance(shell, str):
            return "command.shell: a string"
        return None
