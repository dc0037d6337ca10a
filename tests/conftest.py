"""Shared fixtures. `schemas`: the official XSDs, fetched once per session into the schema dir."""

from __future__ import annotations

import pytest

from iso20022.schemas import SchemaSet, default_cache_dir, default_schema_dir, default_shared_dir, fetch


@pytest.fixture(scope="session")
def schemas() -> SchemaSet:
    schema_dir = default_schema_dir()
    fetch(schema_dir, shared_dir=default_shared_dir(), cache_dir=default_cache_dir(), progress=lambda _line: None)
    return SchemaSet(schema_dir)
