"""A screening API with yente's match contract, for tests and the demo (issue 12): answers
POST /match/{dataset} from a FollowTheMoney list with the switch's embedded matcher, plus
GET /healthz and GET /catalog. Not production code: the switch never imports it.

Behaviours for the failure tests: `delay_s` (answer late: the client's timeout), `fail_status`
(answer every match with that status, e.g. 500).
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

from aiohttp import web

from switch.domain.screening import Role, Subject, SubjectKind
from switch.screening.embedded import EmbeddedScreener

_KINDS = {"Person": SubjectKind.PERSON, "Organization": SubjectKind.ORGANIZATION, "Company": SubjectKind.ORGANIZATION}


class ScreeningSimulator:
    def __init__(self, list_path: Path, *, dataset: str = "default", delay_s: float = 0.0, fail_status: int | None = None) -> None:
        self.matcher = EmbeddedScreener(list_path, threshold=0.01)  # every candidate scored; the query's threshold decides
        self.dataset = dataset
        self.delay_s = delay_s
        self.fail_status = fail_status
        self.requests = 0
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/match/{dataset}", self._match)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/catalog", self._catalog)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _catalog(self, _request: web.Request) -> web.Response:
        return web.json_response({"datasets": [{"name": self.dataset, "title": "Mekong demo list (invented entries)",
                                                "version": self.matcher.list_version, "load": True}]})

    async def _match(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_status is not None:
            return web.json_response({"detail": "simulated failure"}, status=self.fail_status)
        if request.match_info["dataset"] != self.dataset:
            return web.json_response({"detail": f"no dataset {request.match_info['dataset']}"}, status=404)
        threshold = float(request.query.get("threshold", "0.7"))
        body = await request.json()
        responses: dict[str, Any] = {}
        for name, query in body["queries"].items():
            subject = _subject(name, query)
            hit = self.matcher.best_hit(self.matcher._index, subject)
            results = []
            if hit is not None and hit.score >= 0.5:  # yente's cutoff: weaker candidates are not returned [U]
                entry = next(i.entry for i in self.matcher._index.items if i.entry.id == hit.entry_id)
                results.append({"id": entry.id, "caption": entry.caption, "schema": entry.schema, "score": hit.score,
                                "match": hit.score >= threshold, "datasets": list(entry.datasets),
                                "features": {"name_score": hit.score}, "properties": {"name": list(entry.names)}})
            responses[name] = {"status": 200, "results": results, "total": {"value": len(results), "relation": "eq"},
                               "query": query}
        return web.json_response({"responses": responses, "limit": 5})


def _subject(name: str, query: dict[str, Any]) -> Subject:
    props = query.get("properties", {})
    names = props.get("name") or [""]
    birth = props.get("birthDate") or []
    ids = props.get("idNumber") or []
    lei = props.get("leiCode") or []
    country = props.get("country") or props.get("nationality") or []
    return Subject(key=("sim", name), role=Role.DEBTOR, name=names[0], kind=_KINDS.get(query.get("schema", ""), SubjectKind.UNKNOWN),
                   country=country[0] if country else None, birth_date=date.fromisoformat(birth[0]) if birth else None,
                   national_id=ids[0] if ids else None, lei=lei[0] if lei else None,
                   latin=names[1] if len(names) > 1 else None)
