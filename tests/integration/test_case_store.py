"""Exception cases (issue 9) in the SQL store on both databases, and in the fake: the same
answers from each (add, look up by id, ref and payment, versioned update, due claims)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from switch.domain.case import Case, CaseKind, CaseState, Initiator, moved, new_case_id
from switch.domain.errors import ConcurrentUpdate
from switch.domain.money import CURRENCIES, Money
from switch.domain.payment import PaymentState
from switch.store.sql_store import Store
from tests.fakes import FakeStore
from tests.integration.test_store import a_payment

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)


def a_case(uetr: str, **changes: object) -> Case:
    base = dict(
        id=new_case_id(), uetr=uetr, kind=CaseKind.RECALL, initiator=Initiator.PARTICIPANT, counterpart="promptpay",
        state=CaseState.OPEN, reason_code="DUPL", detail="sent twice", ref=f"participant/ACLBKHPPXXX/{uuid.uuid4().hex}",
        message_id=None, amount=Money(124_323, CURRENCIES["THB"]), back_amount=Money(15_000_000, CURRENCIES["KHR"]),
        rate="0.0082882132", rate_rule="original", attempts=0, due_at=NOW, reply_by=NOW + timedelta(minutes=10),
        created_at=NOW, updated_at=NOW,
    )
    base.update(changes)
    return Case(**base)  # type: ignore[arg-type]


@pytest.fixture(params=["sql", "fake"])
async def any_store(request: pytest.FixtureRequest, store: Store):  # type: ignore[no-untyped-def]
    yield store if request.param == "sql" else FakeStore()


async def test_cases_round_trip_and_are_found_by_id_ref_and_payment(any_store: Store) -> None:
    p = a_payment(state=PaymentState.COMPLETED)
    first, second = a_case(p.uetr), a_case(p.uetr, kind=CaseKind.RETURN, created_at=NOW + timedelta(seconds=1), due_at=None)
    async with any_store.unit_of_work() as uow:
        await uow.payments_add([p])
        await uow.cases_add([first, second])
    async with any_store.reader() as uow:
        assert await uow.cases_get([first.id, "Cnope"]) == {first.id: first}
        assert await uow.cases_by_ref([second.ref]) == {second.ref: second}
        assert await uow.cases_of([p.uetr, str(uuid.uuid4())]) == {p.uetr: [first, second]}


async def test_a_case_update_checks_the_version_read(any_store: Store) -> None:
    c = a_case(str(uuid.uuid4()))
    async with any_store.unit_of_work() as uow:
        await uow.cases_add([c])
    sent = moved(c, CaseState.SENT, now=NOW, message_id="M1", attempts=1)
    async with any_store.unit_of_work() as uow:
        await uow.cases_update([(c.version, sent)])
    with pytest.raises(ConcurrentUpdate):
        async with any_store.unit_of_work() as uow:
            await uow.cases_update([(c.version, moved(c, CaseState.REFUSED, now=NOW))])  # read before the SENT
    async with any_store.reader() as uow:
        assert (await uow.cases_get([c.id]))[c.id] == sent


async def test_due_cases_are_claimed_once_until_their_lease_runs_out(any_store: Store) -> None:
    due, later = a_case(str(uuid.uuid4())), a_case(str(uuid.uuid4()), due_at=NOW + timedelta(hours=1))
    async with any_store.unit_of_work() as uow:
        await uow.cases_add([due, later])
    async with any_store.unit_of_work() as uow:
        assert [c.id for c in await uow.cases_claim_due(NOW, 10)] == [due.id]
    async with any_store.unit_of_work() as uow:
        assert await uow.cases_claim_due(NOW + timedelta(seconds=1), 10) == []  # leased
    async with any_store.unit_of_work() as uow:
        claimed = await uow.cases_claim_due(NOW + timedelta(hours=2), 10)
        assert sorted(c.id for c in claimed) == sorted([due.id, later.id])
