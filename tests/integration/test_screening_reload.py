"""The embedded screening list on a running switch (issue 12): built at start, and a list update
is picked up by a configuration reload without a restart; a list that does not load keeps the
running one."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from switch.broker import TansuBroker
from switch.config import PROJECT_ROOT
from switch.domain.screening import Outcome, Role, Subject, SubjectKind
from switch.store.sql_store import Store
from tests.integration.harness import Running, running_switch
from tests.openapi_contract import check


async def _reload(run: Running) -> tuple[int, Any]:
    async with run.ops_session(client="operator") as http:
        async with http.request("POST", f"{run.url}/v1/config/reload", headers=run.auth_as("operator")) as resp:
            answer = await resp.json()
            check("POST", "/v1/config/reload", resp.status, answer)
            return resp.status, answer


def _outcome(run: Running, name: str) -> Outcome:
    verdicts = run.switch.screener.screen_now([Subject(("P", "1"), Role.DEBTOR, name, kind=SubjectKind.PERSON)])
    return verdicts[("P", "1")].outcome  # type: ignore[no-any-return]


async def test_a_list_update_is_loaded_by_a_reload_and_a_broken_one_keeps_the_running_list(
    broker: TansuBroker, store: Store, tmp_path: Path
) -> None:
    config_dir = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    listed = config_dir / "screening" / "demo-list.ftm.json"
    text = listed.read_text(encoding="utf-8")
    added = f"Hildegard Mossbrook-{uuid.uuid4().hex[:4]}"
    async with running_switch(broker, store, config_dir=config_dir) as run:
        assert run.switch.screener is not None
        assert run.switch.metrics.registry.get_sample_value("switch_screening_list_entries") == 30
        assert _outcome(run, "Sima Huilin") is Outcome.HIT
        assert _outcome(run, added) is Outcome.CLEAR

        listed.write_text(text + '{"id": "mk-new-001", "schema": "Person", "properties": {"name": ["%s"]}}\n' % added, encoding="utf-8")
        status, answer = await _reload(run)
        assert status == 200 and answer["screening_list"].startswith("demo-list.ftm.json: 31 entities, sha256 ")
        assert _outcome(run, added) is Outcome.HIT
        assert run.switch.metrics.registry.get_sample_value("switch_screening_list_entries") == 31

        listed.write_text("{not json\n", encoding="utf-8")
        status, answer = await _reload(run)
        assert status == 422 and any("not a FollowTheMoney entity" in p for p in answer["problems"])
        assert _outcome(run, added) is Outcome.HIT  # the running list stays
