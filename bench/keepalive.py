"""The keepalive of a simulated agent's result channel (simulated_agent.py):
WebSocket pings spread over the interval, each timed to its pong."""

import asyncio
import random
import struct
import time

from websocket_client import WebSocketClosed


class Keepalive:
    """Pings on one agent's channel; `settings` (ping_interval_s,
    ping_timeout_s) and `stats` are the fleet's."""

    def __init__(self, settings, stats):
        self.settings = settings
        self.stats = stats
        self.waiters = {}  # ping payload -> the future its pong resolves

    async def run(self, channel):
        """A ping every interval, the first at a random point of it (a fleet
        that connected together does not ping together); returns when the
        channel ends."""
        interval_s = self.settings.ping_interval_s
        if not interval_s:
            return
        await asyncio.sleep(random.uniform(0, interval_s))
        while True:
            began = time.monotonic()
            if not await self._counted_ping(channel):
                return  # the channel loop sees the end and reconnects
            await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - began)))

    async def _counted_ping(self, channel):
        """One ping, counted in stats: answered (its round trip), lost (no
        pong within ping_timeout_s) or cut (the channel ended first: then
        False)."""
        key = self.stats.ping_started()
        outcome = "cut"
        try:
            rtt_ms = await self._ping(channel, self.settings.ping_timeout_s)
            outcome = "answered" if rtt_ms is not None else "lost"
            self.stats.ping_ended(key, rtt_ms, outcome)
            return True
        except (WebSocketClosed, OSError):
            return False
        finally:
            if outcome == "cut":
                self.stats.ping_ended(key, None, "cut")

    async def _ping(self, channel, timeout_s):
        """The round trip of one ping in ms, None without a pong in time;
        raises WebSocketClosed or OSError when the channel is gone."""
        payload = struct.pack("!Q", time.monotonic_ns())
        waiter = asyncio.get_running_loop().create_future()
        self.waiters[payload] = waiter
        try:
            await channel.ping(payload)
            return await asyncio.wait_for(waiter, timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            self.waiters.pop(payload, None)

    async def ping(self, channel, timeout_s):
        """One ping outside the counted ones: its round trip in ms, or None."""
        try:
            return await self._ping(channel, timeout_s)
        except (WebSocketClosed, OSError):
            return None

    def on_pong(self, payload):
        if len(payload) != 8:
            return
        rtt_ms = (time.monotonic_ns() - struct.unpack("!Q", payload)[0]) / 1e6
        waiter = self.waiters.pop(payload, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(rtt_ms)
