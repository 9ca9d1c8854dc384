"""Several fleet_simulator.py processes as one fleet, for bench/fleet: the
agents split among them, each process's connections from its own source
address (127.0.0.2, 127.0.0.3, ...: loopback answers on all of 127/8, so
the hub sees several hosts, as in a fleet), all on the given CPUs."""

import os

import fleet_simulator as fs
import tetherbench as tb


def merge(answers):
    """One answer from those of every process: counts added, Counter dicts
    merged, lists joined, times (keys ending in _at, "now", "window_began")
    the earliest for first_*, else the latest. ping_rtt_ms (each process's
    percentiles) is left out: `pings` has the round trips themselves.
    max_in_flight is added (each process's most at once: an upper bound)."""
    merged = {}
    for answer in answers:
        for key, value in answer.items():
            if key == "ping_rtt_ms":
                continue
            if key.endswith("_at") or key in ("now", "window_began"):
                if value is not None:
                    pick = min if key.startswith("first_") else max
                    merged[key] = value if merged.get(key) is None else pick(merged[key], value)
                else:
                    merged.setdefault(key, None)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                merged[key] = merged.get(key, 0) + value
            elif isinstance(value, list):
                merged.setdefault(key, []).extend(value)
            elif isinstance(value, dict):
                into = merged.setdefault(key, {})
                for name, count in value.items():
                    into[name] = into.get(name, 0) + count
            else:
                merged.setdefault(key, value)
    return merged


class FleetGroup:
    """AGENTS simulated agents (token files of TOKENS_DIR, by name, from the
    first) over PROCESSES processes started with the extra `argv`
    (fleet_simulator.py run options) and their logs in LOG_DIR as
    fleet-TAG-N.log."""

    def __init__(self, hub_url, tokens_dir, agents, processes, argv, log_dir, tag, cpus=None):
        processes = max(1, min(processes, agents))
        counts = [agents // processes + (1 if i < agents % processes else 0)
                  for i in range(processes)]
        self.agents = agents
        self.processes = []
        first = 0
        for index, count in enumerate(counts):
            self.processes.append(fs.FleetProcess(
                ["--hub-url", hub_url, "--tokens-dir", tokens_dir, "--first", str(first),
                 "--agents", str(count), "--source-address", f"127.0.0.{2 + index}",
                 "--ready-partial"] + argv,
                os.path.join(log_dir, f"fleet-{tag}-{index}.log"), cpus))
            first += count

    def start(self, timeout_s):
        """{"ready": hellos acked, "seconds": the slowest process}: every
        process says READY within timeout_s (--ready-timeout-s) and a margin."""
        answers = [process.start(timeout_s + 60) for process in self.processes]
        return {"agents": self.agents, "ready": sum(a["ready"] for a in answers),
                "seconds": max(a["seconds"] for a in answers)}

    def command(self, word, timeout_s=60):
        """Sends WORD to every process at once; their answers, merged (see
        merge; None for reset)."""
        answers = self.command_each(word, timeout_s)
        return None if word == "reset" else merge(answers)

    def command_each(self, word, timeout_s=60):
        """Sends WORD to every process at once; each one's answer."""
        for process in self.processes:
            process.send(word)
        return [process.answer(word, timeout_s) for process in self.processes]

    def finals(self):
        """{task_id: time.monotonic() its verified final was acked}."""
        merged = {}
        for answer in self.command_each("finals"):
            merged.update(answer)
        return merged

    def cpu_seconds(self):
        return sum(tb.proc_cpu_seconds(process.popen.pid) for process in self.processes)

    def stop(self):
        for process in self.processes:
            process.stop()
