"""The one command a simulated agent (simulated_agent.py) does not answer
at once, to load the hub's ingest path:

    argv ["fleet-stream", LINES_PER_S, SECONDS, LINE_BYTES]

writes LINE_BYTES-byte lines at LINES_PER_S for SECONDS, each line its own
task.output frame (a real agent flushes a lone line at once: its
flush_interval_ms is 2), then the task's final with their byte count and
SHA-256. Each line starts with the CLOCK_REALTIME microseconds of its
writing, padded with spaces, so int(line) is when it was written, as with
`tether-test-writer wallclock` (tetherbench.line_latencies_ms reads them
back from hub.db).
"""

import asyncio
import hashlib
import random
import time

STREAM_COMMAND = "fleet-stream"


class Written:
    """What a simulated command wrote to stdout: its size and SHA-256."""

    def __init__(self, size, sha256):
        self.size = size
        self.sha256 = sha256


def stream_request(task):
    """((lines_per_s, seconds, line_bytes), None) for a fleet-stream command,
    (None, None) for any other, (None, problem) for a malformed one."""
    argv = task["command"].get("argv") or []
    if not argv or argv[0] != STREAM_COMMAND:
        return None, None
    try:
        lines_per_s, seconds, line_bytes = float(argv[1]), float(argv[2]), int(argv[3])
        if len(argv) != 4 or lines_per_s <= 0 or seconds < 0 or not 24 <= line_bytes <= 65536:
            raise ValueError(argv)
    except (ValueError, IndexError):
        return None, (f"command.argv: {STREAM_COMMAND} LINES_PER_S SECONDS LINE_BYTES "
                      "(LINE_BYTES 24 to 65536)")
    return (lines_per_s, seconds, line_bytes), None


async def stream_lines(attempt, ids, request, send, stats):
    """Writes the lines of a fleet-stream command on a fixed schedule from a
    random phase (a late line does not shift the rest), keeping each frame
    in attempt.outputs until acked and sending it with send(frame); stops
    early when the attempt is cancelled. Returns what it wrote (Written)."""
    lines_per_s, seconds, line_bytes = request
    digest, size, seq = hashlib.sha256(), 0, 0
    period_s = 1 / lines_per_s
    began = time.monotonic() + random.uniform(0, period_s)
    end = began + seconds
    while not attempt.cancelled.is_set():
        due = began + seq * period_s
        if due >= end:
            break
        if due > time.monotonic():
            try:
                await asyncio.wait_for(attempt.cancelled.wait(), due - time.monotonic())
                break
            except asyncio.TimeoutError:
                pass
        seq += 1
        line = str(time.time_ns() // 1000).ljust(line_bytes - 1) + "\n"
        digest.update(line.encode())
        frame = {"v": 1, "type": "task.output", "message_id": f"{attempt.attempt_id}:stdout:{seq}",
                 "stream": "stdout", "seq": seq, "offset": size, "data": line,
                 "encoding": "utf8", **ids}
        size += len(line)
        attempt.outputs[("stdout", seq)] = frame
        await send(dict(frame))
        stats.lines_written += 1
    return Written(size, digest.hexdigest())
