"""Several switch replicas on one PostgreSQL database and one consumer group: they share the
instructions, the partner calls one of them back for every payment, and their relays and
follow-up timers work on the same tables. Nothing collides: every instruction has one final
outcome, every payment reached the partner as one message, no replica stops."""

from __future__ import annotations

import json
import uuid

from adapters.simulator import SimBehaviour
from switch.broker import TansuBroker
from switch.store.sql_store import Store
from tests.integration.harness import running_switch
from tests.integration.test_pipeline import collect, finals_by_id, instruction, publish

count = 300


async def test_two_replicas_give_each_instruction_one_outcome_and_never_stop(broker: TansuBroker, pg_store: Store) -> None:
    store = pg_store
    account = {"name": "Somchai Jaidee", "account": "1234567890", "agent": "014"}
    ids = [f"P{uuid.uuid4().hex[:12]}" for _ in range(count)]
    behaviour = SimBehaviour(reject_rate=0.05, duplicate_rate=0.05)
    async with running_switch(broker, store, behaviour, replicas=2, timing={"sla_s": 20.0, "resend_after_s": 2.0}) as run:
        await publish(run, [(i, json.dumps(instruction(i, creditor=account)).encode()) for i in ids])
        statuses = await collect(run, run.config.kafka.status_topic, until=lambda rs: set(ids) <= set(finals_by_id(rs)))
        finals = finals_by_id(statuses)
        both = [run.switch, *run.others]
        # both replicas took instructions (the group split the partitions) and none of their tasks died
        assert all(sw.partitions_assigned() for sw in both)
        assert all(not t.done() for sw in both for t in sw._tasks)
    assert all(len({(e["state"], e["reason_code"]) for e in finals[i]}) == 1 for i in ids)  # one outcome each
    republished = [e for i in ids for e in finals[i][1:]]
    assert all(e["event_id"] == finals[e["instruction_id"]][0]["event_id"] for e in republished)
    assert run.sim.stats["accepted"] + sum(v for k, v in run.sim.stats.items() if k.startswith("rejected_")) == count
