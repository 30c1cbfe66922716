"""Concurrency and rate limits per key (an origin, for fetching), shared by every worker of a run.

One :class:`SharedLimits` holds, per key, a count of slots in use (at most ``connections`` at once) and a
token bucket (``rate`` per second, ``burst`` back to back), plus a pause that a ``Retry-After`` sets for
everyone. Workers ask it before each request: :meth:`reserve` answers how long to wait for the next
request's turn, :meth:`acquire` waits for a free slot and :meth:`release` gives it back.

A worker that limits only itself multiplies the limits by the number of workers: eight fetch workers with
``per_host_connections = 8`` would open 64 connections to one origin. An executor that runs a stage in
several processes therefore gives every worker one shared instance: the Ray executor runs it as one actor
and hands workers a client with the same methods (``StageContext.extras["shared_limits"]``). All methods
are coroutines, so a worker awaits the actor's answer inside its own event loop.

The instance keeps no state about who holds a slot: a worker that dies holding one leaves it taken until
the run ends (the Ray executor starts one instance per run).
"""

from __future__ import annotations

import asyncio
import time


class _Key:
    def __init__(self, connections: int, rate: float, burst: int):
        self.connections = max(1, int(connections))
        self.in_use = 0
        self.waiters: list[asyncio.Future] = []
        self.rate = float(rate)
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.not_before = 0.0


class SharedLimits:
    """Slots and a token bucket per key; see the module docstring. Use it from one event loop."""

    def __init__(self) -> None:
        self._keys: dict[str, _Key] = {}
        self.max_in_use: dict[str, int] = {}

    def _key(self, key: str, *, connections: int | None = None, rate: float = 0.0, burst: int = 1) -> _Key:
        """The state of ``key``, made on first use with the limits given; ``connections`` always updates
        it (a key first seen by :meth:`reserve` learns its slots at the first :meth:`acquire`)."""
        k = self._keys.get(key)
        if k is None:
            k = self._keys[key] = _Key(connections or 1, rate, burst)
        elif connections is not None:
            k.connections = max(1, int(connections))
        return k

    async def reserve(self, key: str, rate: float, burst: int) -> float:
        """Take the next request's turn at ``key``; returns the seconds to wait before sending it. A lower
        ``rate`` than the key's (a Crawl-delay) slows the key down for everyone."""
        k = self._key(key, rate=rate, burst=burst)
        if rate > 0 and (k.rate <= 0 or rate < k.rate):
            k.rate, k.capacity, k.tokens = float(rate), 1.0, min(k.tokens, 1.0)
        now = time.monotonic()
        pause = max(0.0, k.not_before - now)
        if k.rate <= 0:
            return pause
        k.tokens = min(k.capacity, k.tokens + (now - k.updated) * k.rate)
        k.updated = now
        k.tokens -= 1.0
        wait = 0.0 if k.tokens >= 0 else -k.tokens / k.rate
        return max(wait, pause)

    async def acquire(self, key: str, connections: int) -> None:
        """Wait for one of the ``connections`` slots of ``key``."""
        k = self._key(key, connections=connections)
        if k.in_use >= k.connections:
            fut = asyncio.get_running_loop().create_future()
            k.waiters.append(fut)
            await fut  # release() hands its slot straight to the first waiter
        else:
            k.in_use += 1
        self.max_in_use[key] = max(self.max_in_use.get(key, 0), k.in_use)

    async def release(self, key: str) -> None:
        k = self._keys.get(key)
        if k is None:
            return
        while k.waiters:
            fut = k.waiters.pop(0)
            if not fut.done():
                fut.set_result(None)
                return
        k.in_use = max(0, k.in_use - 1)

    async def pause(self, key: str, seconds: float) -> None:
        """No request to ``key`` before ``seconds`` from now (a 429's ``Retry-After``), for every worker."""
        k = self._key(key)
        k.not_before = max(k.not_before, time.monotonic() + float(seconds))

    async def stats(self) -> dict[str, int]:
        """The most slots each key had in use at once."""
        return dict(self.max_in_use)


__all__ = ["SharedLimits"]
