"""What bench/fleet and bench/hubs ask a hub: task submissions on several
kept-alive connections, its Prometheus figures, and percentiles of
latencies."""

import asyncio
import json
import time
import urllib.request

import tetherbench as tb
from http_client import HttpConnection, HttpError


def percentiles(values):
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {"p50_ms": tb.percentile(values, 0.5), "p99_ms": tb.percentile(values, 0.99),
            "max_ms": max(values)}


def hub_metrics(port):
    """A few of the hub's Prometheus figures ({} when it does not answer)."""
    wanted = ("connections", "polls_parked", "polls_departed_total",
              "connections_refused_total", "accept_failures_total")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("tether_hub_") and name[len("tether_hub_"):] in wanted:
            values[name[len("tether_hub_"):]] = float(value)
    return values


async def submit_all(port, token, bodies, connections):
    """POST /api/v1/tasks for each body on CONNECTIONS kept-alive
    connections at once: [(sent_at, task id or None, status)] in order."""
    results = [None] * len(bodies)
    todo = iter(range(len(bodies)))
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

    async def client():
        connection = HttpConnection("127.0.0.1", port)
        try:
            for index in todo:
                sent_at = time.monotonic()
                try:
                    status, _, body = await connection.request(
                        "POST", "/api/v1/tasks", headers, json.dumps(bodies[index]).encode())
                except HttpError as error:
                    results[index] = (sent_at, None, error.kind)
                    continue
                task_id = json.loads(body).get("id") if status == 201 else None
                results[index] = (sent_at, task_id, status)
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return results
