"""Fixtures shared by the handler tests that run on the in-memory fakes (tests/fakes.py)."""

from __future__ import annotations

import pytest

from iso20022.schemas import SchemaSet
from switch.service.handlers import Deps
from tests.fakes import FakeClock, deps_from_config


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def deps(schemas: SchemaSet, clock: FakeClock) -> Deps:
    """The shipped config's dependencies on the fake clock (a test module may define its own)."""
    return deps_from_config(schemas, clock)
