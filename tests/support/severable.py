"""A robust AMQP connection the test can sever under its client, as a broker node going away
does, while everything else (other connections, the broker itself) carries on.

The connection runs through a `TcpProxy` of the test's own. Severing it closes the TCP
connection at both ends: the broker closes the connection's channels and requeues their
unacknowledged deliveries, the client sees its channels close, and the robust connection comes
back after `RECONNECT_SECONDS` with its channels and consumers restored.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from tests.support.proxy import TcpProxy

RECONNECT_SECONDS = 0.2
RESTORED_WITHIN_SECONDS = 10


class SeverableConnection:
    def __init__(self, amqp_url: str) -> None:
        parts = urlsplit(amqp_url)
        self._url = parts
        self._proxy = TcpProxy(parts.port or 5672, upstream_host=parts.hostname or "127.0.0.1")
        self._connection: AbstractRobustConnection | None = None

    @property
    def connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("the connection is not open")
        return self._connection

    async def __aenter__(self) -> Self:
        await self._proxy.start()
        userinfo, at, _ = self._url.netloc.rpartition("@")
        netloc = f"{userinfo}{at}127.0.0.1:{self._proxy.port}"
        through_proxy = urlunsplit(self._url._replace(netloc=netloc))
        self._connection = await aio_pika.connect_robust(
            through_proxy, reconnect_interval=RECONNECT_SECONDS
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._connection is not None:
                await self._connection.close()
        finally:
            await self._proxy.close()

    async def sever(self) -> None:
        """Close the connection under the client, and return once the robust connection is
        back with its channels and consumers restored."""
        restored = asyncio.Event()

        def on_reconnect(_: AbstractRobustConnection | None, /) -> None:
            restored.set()

        self.connection.reconnect_callbacks.add(on_reconnect)
        try:
            await self._proxy.cut(0)
            await asyncio.wait_for(restored.wait(), RESTORED_WITHIN_SECONDS)
        finally:
            self.connection.reconnect_callbacks.remove(on_reconnect)
