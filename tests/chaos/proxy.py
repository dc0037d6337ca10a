"""A tiny load balancer in front of the switch replicas, for the partners' callbacks.

A partner network is configured with one callback URL; in production that URL names a load
balancer (a Kubernetes Service, an HAProxy) in front of every replica, not one replica. This plays
that part: each request goes to the next replica in turn; a replica that refuses the connection
(it is dead) is skipped and the next one tried, since the request never left; a replica that dies
while holding the request makes the answer a 502, and the partner retries, as it would with a real
balancer that does not repeat a POST on its own.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
from aiohttp import web

forward_timeout_s = 10.0  # one forwarded request, the replica's answer included
body_bytes_max = 1_000_000


class CallbackBalancer:
    def __init__(self, targets: list[str]) -> None:
        if not targets:
            raise ValueError("a balancer needs at least one target")
        self.targets = list(targets)
        self.stats: Counter[str] = Counter()
        self._next = 0
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    async def start(self, port: int, host: str = "127.0.0.1") -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=body_bytes_max)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() == "content-type"}
        start = self._next
        self._next = (self._next + 1) % len(self.targets)
        for i in range(len(self.targets)):
            target = self.targets[(start + i) % len(self.targets)]
            try:
                async with self._session.request(
                    request.method, target + request.path_qs, data=body, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=forward_timeout_s),
                ) as resp:
                    answer = await resp.read()
                    self.stats[f"forwarded {target}"] += 1
                    content_type = resp.headers.get("Content-Type")
                    return web.Response(
                        status=resp.status, body=answer, headers={"Content-Type": content_type} if content_type else None
                    )
            except aiohttp.ClientConnectorError:  # refused: the request never left, the next replica may take it
                self.stats[f"refused {target}"] += 1
            except (aiohttp.ClientError, asyncio.TimeoutError):  # it may have been processed: the caller decides
                self.stats[f"broken {target}"] += 1
                return web.json_response({"error": f"upstream {target} failed mid-request"}, status=502)
        return web.json_response({"error": "no replica accepted the connection"}, status=503)
