"""HTTP transport to a partner network: the only async part of an adapter (STYLE §7).

POSTs one ISO 20022 document to `<base_url>/iso20022`. Every call is bounded by a timeout and
the partner's in-flight semaphore. With a `seal` (signed business application headers, the
partner's profile has [signing]) each attempt sends the stored Document in a business message
signed at that moment: a fresh CreDt and signature every time, the Document byte for byte the
stored one (iso20022/apphdr.py). The outcome is a value, with a `retriable` flag, never an
exception: the sender decides what to do with it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import aiohttp


class SendOutcome(StrEnum):
    OK = "ok"  # the partner took the message (2xx)
    REFUSED = "http_error"  # the partner answered no (4xx): resending the same bytes will not help
    FAILED = "connection_error"  # no connection: nothing reached the partner, safe to resend
    TIMEOUT = "timeout"  # may or may not have reached the partner: resend the same bytes
    DISCONNECTED = "disconnected"  # the connection broke after the request went out: may have reached it
    UNAVAILABLE = "unavailable"  # 503 / 429: the partner did not take it now; resend later
    SERVER_ERROR = "server_error"  # another 5xx: the partner may have acted on it before failing


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: SendOutcome
    http_status: int | None
    detail: str
    duration_s: float

    @property
    def retriable(self) -> bool:
        return self.outcome is not SendOutcome.OK and self.outcome is not SendOutcome.REFUSED

    @property
    def ambiguous(self) -> bool:
        """The partner may have the message although the switch did not hear it take it: such a
        payment is resolved by resending (the partner answers with its stored status), never
        rejected as 'not received'."""
        return self.outcome in (SendOutcome.TIMEOUT, SendOutcome.DISCONNECTED, SendOutcome.SERVER_ERROR)


# (stored Document, possible duplicate) -> the signed business message to send
Seal = Callable[[bytes, bool], bytes]


class HttpPartnerTransport:
    """`ssl_context`: the switch's client certificate and the partner's CA (switch/tls.py); a
    server certificate that this CA did not issue fails the handshake: FAILED, nothing sent.
    `seal`: signs each attempt (None: the Document goes bare, for a partner that does not sign)."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, *, timeout_s: float, inflight_max: int,
        ssl_context: ssl.SSLContext | None = None, seal: Seal | None = None,
    ) -> None:
        self._seal = seal
        self._session = session
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._url = base_url.rstrip("/") + "/iso20022"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._slots = asyncio.Semaphore(inflight_max)

    async def submit(self, body: bytes, *, message_id: str, possible_duplicate: bool = False) -> SendResult:
        """Send `body` (a stored Document); `possible_duplicate`: an earlier attempt may have
        reached the partner (AppHdr PssblDplct)."""
        started = time.perf_counter()
        async with self._slots:
            if self._seal is not None:  # signed when it goes, inside the slot: CreDt is the send time
                body = self._seal(body, possible_duplicate)
            try:
                async with self._session.post(
                    self._url,
                    data=body,
                    headers={"Content-Type": "application/xml; charset=utf-8", "X-Message-Id": message_id},
                    timeout=self._timeout,
                    ssl=self._ssl,
                ) as resp:
                    text = (await resp.text())[:500]
                    status = resp.status
            except asyncio.TimeoutError:
                return SendResult(SendOutcome.TIMEOUT, None, "partner did not answer in time", time.perf_counter() - started)
            except aiohttp.ClientConnectorError as exc:  # before anything was sent
                return SendResult(SendOutcome.FAILED, None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started)
            except aiohttp.ClientError as exc:  # the request may have gone out before the break
                return SendResult(SendOutcome.DISCONNECTED, None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started)
        elapsed = time.perf_counter() - started
        if 200 <= status < 300:
            return SendResult(SendOutcome.OK, status, text, elapsed)
        if status in (429, 503):
            return SendResult(SendOutcome.UNAVAILABLE, status, text, elapsed)
        if status >= 500:
            return SendResult(SendOutcome.SERVER_ERROR, status, text, elapsed)
        return SendResult(SendOutcome.REFUSED, status, text, elapsed)
