"""Proxy look-ups before admission (acmt.023 -> acmt.024), for partners whose profile says
`proxy_resolution`. Runs at the Kafka edge, before the admission transaction: a look-up changes
nothing, so it needs no outbox, and the admission handler stays free of I/O (it is handed the
answers). Answers are cached for `limits.proxy_cache_ttl_s`.

A proxy whose look-up failed (network down, an answer that does not validate) is given to the
handler as None and rejected AB07; a proxy the network does not know is rejected BE23.

To a partner that signs (its profile's [signing]) the acmt.023 goes as a signed business message
and the acmt.024 must come back as one, signed by the partner (switch/signing.py); an answer that
is not (bad or missing signature, wrong Fr/To, stale CreDt) counts as a failed look-up. It answers
our request on the same authenticated connection and names our request's message id, so no
replay record is kept for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

import aiohttp

from adapters import proxy_resolution
from adapters.base import PartnerMapping
from adapters.proxy_resolution import Resolution
from iso20022 import acmt023, acmt024, apphdr
from iso20022.errors import SchemaViolation, XmlRejected
from iso20022.parsing import message_id_of, parse_untrusted
from iso20022.schemas import SchemaSet
from switch import limits
from switch.config import SwitchConfig
from switch.metrics import Metrics
from switch.service.handlers import ParsedInstruction
from switch.signing import Sealer

log = logging.getLogger(__name__)
ProxyKey = tuple[str, str, str]  # (partner, proxy type, proxy value)


def proxies_to_resolve(
    items: Iterable[ParsedInstruction], config: SwitchConfig, mappings: Mapping[str, PartnerMapping]
) -> set[ProxyKey]:
    """The (partner, type, value) of every proxy creditor whose partner resolves proxies, from
    the creditor given or the one the scanned QR names (decoded at the edge, never here; a QR
    that did not decode is left to admission)."""
    keys: set[ProxyKey] = set()
    for item in items:
        ins = item.instruction
        creditor = ins.creditor
        if ins.limited is not None:  # refused for its participant's rate: no partner is asked
            continue
        if creditor is None or creditor.proxy_type is None or creditor.proxy is None:
            continue
        corridor_id = ins.qr.corridor if ins.qr is not None else ins.corridor
        corridor = config.corridor(corridor_id) if corridor_id is not None else None
        mapping = mappings.get(corridor.partner) if corridor is not None else None
        if mapping is not None and mapping.profile.proxy_resolution and mapping.profile.proxy_rule(creditor.proxy_type) is not None:
            keys.add((mapping.profile.partner, creditor.proxy_type, creditor.proxy))
    return keys


class ProxyResolver:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        mappings: Mapping[str, PartnerMapping],
        schemas: SchemaSet,
        *,
        switch_bic: str,
        clock: Callable[[], datetime],
        metrics: Metrics,
        ssl_contexts: Mapping[str, ssl.SSLContext] | None = None,  # per partner (mutual TLS); None: plain HTTP
        signing: Sealer | None = None,  # signed business messages with partners that sign; None: --insecure-dev
    ) -> None:
        self._signing = signing
        self._session = session
        self._ssl = dict(ssl_contexts or {})
        self._mappings = mappings
        self._schemas = schemas
        self._switch_bic = switch_bic
        self._clock = clock
        self._metrics = metrics
        self._cache: OrderedDict[ProxyKey, tuple[float, Resolution]] = OrderedDict()
        # partner -> monotonic time until which its look-ups fail at once: a partner that just
        # failed one (down, hung) must not hold every batch of the consumer, all corridors
        # included, for the look-up timeout each time
        self._failing_until: dict[str, float] = {}

    async def resolve(self, keys: set[ProxyKey]) -> dict[ProxyKey, Resolution | None]:
        out: dict[ProxyKey, Resolution | None] = {}
        now_mono = time.monotonic()
        missing: dict[str, list[ProxyKey]] = {}
        for key in keys:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > now_mono:
                out[key] = cached[1]
                self._metrics.proxy_lookups.labels(key[0], "cached").inc()
            elif self._failing_until.get(key[0], 0.0) > now_mono:
                out[key] = None  # the partner failed a look-up moments ago: fail fast (AB07)
                self._metrics.proxy_lookups.labels(key[0], "failing_fast").inc()
            else:
                missing.setdefault(key[0], []).append(key)
        calls = [
            self._lookup(partner, batch[i : i + limits.proxy_lookup_batch_max])
            for partner, batch in missing.items()
            for i in range(0, len(batch), limits.proxy_lookup_batch_max)
        ]
        for found in await asyncio.gather(*calls):
            out.update(found)
        return out

    async def _lookup(self, partner: str, keys: list[ProxyKey]) -> dict[ProxyKey, Resolution | None]:
        profile = self._mappings[partner].profile
        message_id = f"V{os.urandom(16).hex()}"
        request = proxy_resolution.request(
            profile, [(k[1], k[2]) for k in keys], message_id=message_id, created_at=self._clock(), switch_bic=self._switch_bic
        )
        body = acmt023.build_validated(request, self._schemas)
        signing = self._signing if self._signing is not None and self._signing.signs_with(partner) else None
        if signing is not None:
            body = signing.seal(partner, body, now=self._clock())
        started = time.perf_counter()
        try:
            async with self._session.post(
                profile.base_url.rstrip("/") + "/iso20022",
                data=body,
                headers={"Content-Type": "application/xml; charset=utf-8"},
                timeout=aiohttp.ClientTimeout(total=limits.proxy_lookup_timeout_s),
                ssl=self._ssl.get(partner, True),
            ) as resp:
                answer = await resp.read()
                if resp.status != 200:
                    raise XmlRejected("FF01", f"HTTP {resp.status}: {answer[:200]!r}")
            root = parse_untrusted(answer, size_bytes_max=limits.xml_body_bytes_max)
            if signing is not None and (signing.counterparts[partner].required or apphdr.is_envelope(root)):
                try:
                    root = signing.open(partner, root, schemas=self._schemas, now=self._clock()).document
                except apphdr.Refused as exc:
                    self._metrics.security_refusals.labels("proxy_lookup", exc.reason).inc()
                    raise XmlRejected(exc.reason_code, f"acmt.024 refused: {exc.message}") from None
            if message_id_of(root) != "acmt.024.001.04":
                raise XmlRejected("FF01", f"expected acmt.024.001.04, got {message_id_of(root)}")
            self._schemas.validate(root, "acmt.024.001.04")
            report = acmt024.parse(root)
            if report.original_message_id not in (None, message_id):
                raise XmlRejected("FF01", f"the acmt.024 answers {report.original_message_id!r}, not our {message_id!r}")
        except (aiohttp.ClientError, asyncio.TimeoutError, XmlRejected, SchemaViolation) as exc:
            log.warning("proxy look-up of %d proxies at %s failed: %s", len(keys), partner, exc)
            self._metrics.proxy_lookups.labels(partner, "failed").inc(len(keys))
            self._failing_until[partner] = time.monotonic() + limits.proxy_lookup_backoff_s
            return {k: None for k in keys}
        finally:
            self._metrics.partner_request.labels(partner, "proxy_lookup").observe(time.perf_counter() - started)
        answers = proxy_resolution.read_report(profile, report)
        expires = time.monotonic() + limits.proxy_cache_ttl_s
        out: dict[ProxyKey, Resolution | None] = {}
        for key in keys:
            found = answers.get(proxy_resolution.verification_id(key[1], key[2]))
            out[key] = found
            if found is None:
                self._metrics.proxy_lookups.labels(partner, "unanswered").inc()
                continue
            self._metrics.proxy_lookups.labels(partner, "verified" if found.verified else "unknown").inc()
            self._cache[key] = (expires, found)
            self._cache.move_to_end(key)
        while len(self._cache) > limits.proxy_cache_entries_max:
            self._cache.popitem(last=False)
        return out
