"""The screening port on an external API with yente's match contract (issue 12), for deployments
that run yente (OpenSanctions' API) or a compatible service.

POST {url}/match/{dataset}?algorithm=...&threshold=... with one query per subject:
    {"queries": {"q0": {"schema": "Person", "properties": {"name": [...], "birthDate": [...],
                                                           "country": [...], "idNumber": [...]}}}}
answered by {"responses": {"q0": {"results": [{"id", "caption", "schema", "score", "match",
"datasets", "features", ...}], "total": ...}}}. A result with "match" true (or, when absent, a
score at or above the threshold) is a hit.

Fails closed: a timeout, a connection error, a status other than 200, an answer that does not
parse or lacks a query's response gives `Outcome.UNAVAILABLE` with a detail, never an exception
(the payment is held, like a hit). Logs carry no party data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Sequence
from typing import Any, Final

import aiohttp
from yarl import URL

from switch.domain.screening import Hit, Outcome, Subject, SubjectKind, Verdict

log = logging.getLogger(__name__)

QUERIES_PER_REQUEST_MAX: Final = 50  # yente's default MAX_BATCH [U]
ANSWER_BYTES_MAX: Final = 4 * 1024 * 1024
DETAIL_CHARS_MAX: Final = 200


def query_of(subject: Subject) -> dict[str, Any]:
    """A subject as a yente example entity (FollowTheMoney schema and properties)."""
    names = [subject.name] + ([subject.latin] if subject.latin and subject.latin != subject.name else [])
    props: dict[str, list[str]] = {"name": names}
    if subject.birth_date is not None:
        props["birthDate"] = [subject.birth_date.isoformat()]
    if subject.country:
        props["country"] = [subject.country.lower()]
    if subject.national_id:
        props["idNumber"] = [subject.national_id]
    if subject.lei:
        props["leiCode"] = [subject.lei]
    schema = {SubjectKind.PERSON: "Person", SubjectKind.ORGANIZATION: "Organization"}.get(subject.kind, "LegalEntity")
    return {"schema": schema, "properties": props}


class YenteScreener:
    provider: Final = "yente"

    def __init__(self, url: str, *, dataset: str, algorithm: str, threshold: float, timeout_s: float,
                 metrics: Any = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.url = url.rstrip("/")
        self._shown_url = str(URL(self.url).with_user(None))  # what logs say: no credentials
        self.dataset = dataset
        self.algorithm = algorithm
        self.threshold = threshold
        self.timeout_s = timeout_s
        self._metrics = metrics
        # TLS: the system's trust store unless told otherwise
        self._ssl = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._session: aiohttp.ClientSession | None = None
        # what decided, in each verdict: the remote dataset (its own version is the API's to tell)
        self._version = f"yente:{dataset}"

    def reload(self) -> str:
        return f"remote: {self._shown_url} dataset {self.dataset}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl))
        return self._session

    async def screen(self, subjects: Sequence[Subject]) -> dict[tuple[str, str], Verdict]:
        started = time.perf_counter()
        verdicts: dict[tuple[str, str], Verdict] = {}
        for start in range(0, len(subjects), QUERIES_PER_REQUEST_MAX):
            for key, verdict in (await self._screen_batch(subjects[start:start + QUERIES_PER_REQUEST_MAX], verdicts)).items():
                if verdicts.get(key) is None or verdicts[key].outcome is not Outcome.HIT:  # a hit says more than an outage
                    verdicts[key] = verdict
        if self._metrics is not None and verdicts:
            elapsed = time.perf_counter() - started
            for verdict in verdicts.values():
                self._metrics.screening_seconds.labels(self.provider, verdict.outcome.value).observe(elapsed / len(verdicts))
        return verdicts

    async def _screen_batch(self, subjects: Sequence[Subject], so_far: dict[tuple[str, str], Verdict]) -> dict[tuple[str, str], Verdict]:
        queries = {f"q{i}": query_of(s) for i, s in enumerate(subjects)}
        try:
            answer = await self._post({"queries": queries})
            responses = answer["responses"]
            found = {name: self._best(responses[name]["results"], subject) for name, subject in zip(queries, subjects)}
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError, KeyError, TypeError) as exc:
            detail = _detail(exc)
            log.warning("screening API %s unavailable: %s", self._shown_url, detail)
            return {s.key: Verdict(Outcome.UNAVAILABLE, detail=detail) for s in subjects}
        out: dict[tuple[str, str], Verdict] = {}
        for name, subject in zip(queries, subjects):
            hit = found[name]
            prior = out.get(subject.key) or so_far.get(subject.key)
            if prior is not None and prior.outcome is not Outcome.CLEAR:
                if hit is None or prior.hit is None or prior.hit.score >= hit.score:
                    out[subject.key] = prior
                    continue
            out[subject.key] = Verdict(Outcome.HIT, hit, list_version=self._version) if hit is not None \
                else Verdict(Outcome.CLEAR, list_version=self._version)
        return out

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        params = {"algorithm": self.algorithm, "threshold": str(self.threshold)}
        async with asyncio.timeout(self.timeout_s):
            async with self._client().post(f"{self.url}/match/{self.dataset}", json=body, params=params) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP {resp.status}")
                raw = await resp.content.read(ANSWER_BYTES_MAX + 1)
        if len(raw) > ANSWER_BYTES_MAX:
            raise ValueError(f"answer larger than {ANSWER_BYTES_MAX} bytes")
        try:
            answer = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError("answer is not JSON") from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("responses"), dict):
            raise ValueError("answer has no responses")
        return answer

    def _best(self, results: list[dict[str, Any]], subject: Subject) -> Hit | None:
        best: Hit | None = None
        for result in results:
            score = float(result["score"])
            matched = result.get("match")
            if not (matched if isinstance(matched, bool) else score >= self.threshold):
                continue
            if best is None or score > best.score:
                features = result.get("features") or {}
                why = ", ".join(f"{k} {float(v):.2f}" for k, v in sorted(features.items()) if isinstance(v, int | float) and v)
                best = Hit(role=subject.role, score=round(min(1.0, max(0.0, score)), 4), entry_id=str(result["id"]),
                           entry_name=str(result.get("caption") or result["id"]), matched_name=subject.name,
                           datasets=tuple(str(d) for d in result.get("datasets") or ()), explanation=why[:DETAIL_CHARS_MAX])
        return best


def _detail(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, KeyError):
        return f"answer lacks {exc}"[:DETAIL_CHARS_MAX]
    return f"{type(exc).__name__}: {exc}"[:DETAIL_CHARS_MAX]
