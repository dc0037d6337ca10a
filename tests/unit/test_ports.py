"""The UnitOfWork port and its two implementations: the SQL one and the in-memory fake provide
every method of the protocol, with the protocol's signature, so a handler tested on the fake
calls nothing the SQL store lacks."""

from __future__ import annotations

import inspect
import typing

import pytest

from switch.service import bus, follow_up, group_commit, handlers, inbound, ports
from switch.store import sql_store
from tests.fakes import FakeStore, FakeUnitOfWork

PROTOCOL_METHODS = sorted(
    name for name, member in vars(ports.UnitOfWork).items() if inspect.isfunction(member) and not name.startswith("_")
)


def _signature(cls: type, name: str) -> inspect.Signature:
    """The method's signature with annotations resolved to objects (the modules use postponed
    annotations, so the strings would differ in spelling, not in meaning)."""
    fn = getattr(cls, name)
    hints = typing.get_type_hints(fn)
    sig = inspect.signature(fn)
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()]
    return sig.replace(parameters=params, return_annotation=hints.get("return", sig.return_annotation))


def test_the_protocol_lists_what_the_handlers_call() -> None:
    called = set()
    for module in (handlers, inbound, follow_up):
        source = inspect.getsource(module)
        called |= {name for name in dir(sql_store.UnitOfWork) if f"uow.{name}(" in source}
    assert set(PROTOCOL_METHODS) == called


@pytest.mark.parametrize("implementation", [sql_store.UnitOfWork, FakeUnitOfWork], ids=["sql", "fake"])
@pytest.mark.parametrize("name", PROTOCOL_METHODS)
def test_each_unit_of_work_has_the_protocol_method_with_its_signature(implementation: type, name: str) -> None:
    assert inspect.iscoroutinefunction(getattr(implementation, name, None)), f"{implementation.__name__}.{name}"
    assert _signature(implementation, name) == _signature(ports.UnitOfWork, name)


def test_the_fake_matches_the_sql_signature_of_every_other_method_they_share() -> None:
    shared = {
        name for name in vars(FakeUnitOfWork)
        if not name.startswith("_") and inspect.isfunction(getattr(FakeUnitOfWork, name)) and hasattr(sql_store.UnitOfWork, name)
    } - set(PROTOCOL_METHODS)
    assert shared, "the fake claims due rows as the relay does"
    for name in sorted(shared):
        assert _signature(FakeUnitOfWork, name) == _signature(sql_store.UnitOfWork, name), name


def test_the_stores_give_units_of_work_of_the_port() -> None:
    for implementation in (sql_store.Store, FakeStore):
        for name in ("unit_of_work", "reader"):
            assert callable(getattr(implementation, name))


def test_handlers_bus_and_group_commit_are_typed_against_the_port() -> None:
    for fn in (
        handlers.accept_instructions, handlers.record_send_results, handlers.apply_partner_statuses,
        inbound.accept_inbound, inbound.apply_inbound_replies, follow_up.follow_up_payments,
        bus.MessageBus.dispatch,
    ):
        assert typing.get_type_hints(fn)["uow"] is ports.UnitOfWork, fn.__qualname__
    assert typing.get_type_hints(bus.MessageBus.__init__)["store"] is ports.Store
    assert group_commit.UnitOfWork is ports.UnitOfWork
