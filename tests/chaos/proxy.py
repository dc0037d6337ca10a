"""A tiny load balancer in front of the switch replicas, for the partners' callbacks.

A partner network is configured with one callback URL; in production that URL names a load
balancer (a Kubernetes Service, an HAProxy) in front of every replica, not one replica. This plays
that part, at the TCP level (TLS passthrough, as HAProxy's `mode tcp`): the partner's mutual TLS
ends at the replica, which sees the partner's own certificate. Each connection goes to the next
replica in turn; a replica that refuses the connection (it is dead) is skipped and the next one
tried, since nothing was sent yet; a replica that dies while holding the connection breaks it, and
the partner retries, as it would with a real balancer that does not repeat a request on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

connect_timeout_s = 2.0
chunk_bytes_max = 65_536


class CallbackBalancer:
    def __init__(self, targets: list[tuple[str, int]]) -> None:
        if not targets:
            raise ValueError("a balancer needs at least one target")
        self.targets = list(targets)
        self.stats: Counter[str] = Counter()
        self._next = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self, port: int, host: str = "127.0.0.1") -> None:
        self._server = await asyncio.start_server(self._accept, host, port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        start = self._next
        self._next = (self._next + 1) % len(self.targets)
        for i in range(len(self.targets)):
            host, port = self.targets[(start + i) % len(self.targets)]
            try:
                async with asyncio.timeout(connect_timeout_s):
                    upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
            except (OSError, asyncio.TimeoutError):  # refused: nothing was sent, the next replica may take it
                self.stats[f"refused {port}"] += 1
                continue
            self.stats[f"forwarded {port}"] += 1
            pipes = [
                asyncio.create_task(self._pipe(client_reader, upstream_writer)),
                asyncio.create_task(self._pipe(upstream_reader, client_writer)),
            ]
            self._pipes.update(pipes)
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in pipes:
                    task.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
                self._pipes.difference_update(pipes)
                for writer in (upstream_writer, client_writer):
                    writer.close()
            return
        self.stats["no replica"] += 1
        client_writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(chunk_bytes_max):
                writer.write(data)
                await writer.drain()
