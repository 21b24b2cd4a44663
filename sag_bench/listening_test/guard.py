"""Connection guard for the study server: idle or stalled sockets cannot starve real raters.

uvicorn's h11 protocol closes a keep-alive connection only after it has answered a request; a socket that connects
and then sends nothing (or half a request line, byte by byte) stays open forever. :class:`GuardedH11Protocol`
adds two rules:

* a connection must complete a request within ``header_seconds`` of opening (or of its last response, plus the
  keep-alive time); a request must be answered within ``request_seconds``, else the socket is closed;
* when more than ``max_connections`` are open, a new connection first evicts the longest-idle one (no request in
  progress); if every connection is busy, the new one is closed.

So a flood of stalled connections costs each of them a socket for a few seconds, and a rater who connects during
the flood is served at once.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with request deadlines and idle-first eviction (limits are class attributes)."""

    max_connections = 256
    header_seconds = 10.0
    keep_alive_seconds = 75.0
    request_seconds = 120.0

    _deadline: asyncio.TimerHandle | None = None
    _idle_since = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_seconds)
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm(self.keep_alive_seconds + self.header_seconds)

    def busy(self) -> bool:
        """True while a request has been received and its response is not complete."""
        return self.cycle is not None and not self.cycle.response_complete

    def _arm(self, seconds: float) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._idle_since = self.loop.time()
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        if self.busy() and self.loop.time() - self._idle_since < self.request_seconds:
            self._deadline = self.loop.call_later(self.request_seconds, self._expire)
            return
        self.transport.close()

    def _make_room(self) -> None:
        idle = [c for c in self.connections if isinstance(c, GuardedH11Protocol) and c is not self and not c.busy()
                and not c.transport.is_closing()]
        victim = min(idle, key=lambda c: c._idle_since, default=self)
        victim.transport.close()


def guarded_protocol(max_connections: int, header_seconds: float, keep_alive_seconds: float) -> type[H11Protocol]:
    """A :class:`GuardedH11Protocol` subclass with these limits, to pass as ``uvicorn.run(http=...)``."""
    return type("StudyH11Protocol", (GuardedH11Protocol,), {
        "max_connections": max_connections, "header_seconds": header_seconds,
        "keep_alive_seconds": keep_alive_seconds})
