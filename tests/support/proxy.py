"""A small TCP proxy for fault injection: forwards a local port to an upstream, and breaks it.

Each service replica reaches PostgreSQL and RabbitMQ through one of these, so the test can hurt
the network between one replica and one server without touching anything else:

- `cut(seconds)`: close every connection (FIN) and refuse new ones for a while (a new connection
  is accepted and reset at once, so the listening port stays ours for the restore);
- `stall(seconds)`: stop forwarding bytes both ways while keeping every socket open, as a
  congested or black-holed link does; the data held back is delivered afterwards;
- `reset()`: abort every connection with a TCP RST (`SO_LINGER` 0), new ones work at once.

Everything stays on 127.0.0.1. The proxy runs on the test's event loop: nothing here blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field

CHUNK = 64 * 1024
_LINGER_ZERO = struct.pack("ii", 1, 0)


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self, *, reset: bool = False) -> None:
        for writer in (self.client, self.upstream):
            if reset:
                _abort_with_rst(writer)
            else:
                writer.close()
        for pump in self.pumps:
            pump.cancel()


class TcpProxy:
    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._refusing = False

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()
        self._flowing.set()

    async def cut(self, seconds: float) -> None:
        """Close every connection and refuse new ones for `seconds`."""
        self._refusing = True
        try:
            for link in list(self._links):
                link.close()
            await asyncio.sleep(seconds)
        finally:
            self._refusing = False

    async def stall(self, seconds: float) -> None:
        """Forward nothing, either way, for `seconds`; the sockets stay open."""
        self._flowing.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            self._flowing.set()

    def reset(self) -> None:
        """Abort every open connection with a TCP RST."""
        for link in list(self._links):
            link.close(reset=True)

    @property
    def connections(self) -> int:
        return len(self._links)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            _abort_with_rst(writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            _abort_with_rst(writer)  # the server is down: the client sees its connection fail
            return
        link = _Link(client=writer, upstream=upstream_writer)
        link.pumps = [
            asyncio.create_task(self._pump(reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, writer)),
        ]
        self._links.add(link)
        try:
            # Either side closing ends the link: neither protocol here uses half-closed sockets.
            await asyncio.wait(link.pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._links.discard(link)
            link.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(CHUNK):
                # While stalled, one chunk waits here and TCP back-pressure holds the rest.
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    writer.transport.abort()
