"""The OpenAPI document of the HTTP API (switch/entrypoints/openapi.json, served at
/v1/openapi.json): valid OpenAPI 3.1, and in step with the routes the two aiohttp apps register,
both ways. Real answers are checked against it in tests/integration/test_toolbox.py and
tests/integration/test_corridor_controls.py."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

from switch.entrypoints.http_app import build_ops_app, build_partner_app
from switch.entrypoints.ops_edge import openapi_document
from switch.metrics import Metrics
from tests.openapi_contract import check, document

METHODS = {"get", "post", "put", "patch", "delete"}


def _apps() -> list[Any]:
    bus = SimpleNamespace(deps=SimpleNamespace(metrics=Metrics()))

    async def readiness() -> tuple[dict[str, bool], dict[str, Any]]:
        return {}, {}

    async def gauges() -> None:
        return None

    return [build_ops_app(bus, readiness=readiness, refresh_gauges=gauges), build_partner_app(bus, partner_auth=None)]  # type: ignore[arg-type]


def _registered() -> set[tuple[str, str]]:
    return {
        (route.method.lower(), route.resource.canonical)
        for app in _apps() for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def _documented() -> set[tuple[str, str]]:
    return {(method, path) for path, item in document()["paths"].items() for method in item if method in METHODS}


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = json.loads(openapi_document())
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises OpenAPIValidationError naming the place


def test_every_registered_route_is_documented() -> None:
    missing = _registered() - _documented()
    assert not missing, f"routes the apps serve that the OpenAPI document lacks: {sorted(missing)}"


def test_every_documented_route_is_registered() -> None:
    extra = _documented() - _registered()
    assert not extra, f"routes the OpenAPI document lists that no app serves: {sorted(extra)}"


def test_every_operation_documents_its_refusal_shape() -> None:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            assert operation.get("operationId"), (method, path)
            statuses = {int(s) for s in operation["responses"]}
            assert any(200 <= s < 300 for s in statuses), (method, path)
            if path.startswith("/v1/"):
                assert {401, 403} <= statuses, (method, path)


def test_the_checker_refuses_an_answer_off_the_schema() -> None:
    check("get", "/v1/payments", 200, {"payments": [], "next_cursor": None})
    with pytest.raises(jsonschema.ValidationError):
        check("get", "/v1/payments", 200, {"payments": [{"uetr": 1}], "next_cursor": None})
    with pytest.raises(KeyError):
        check("get", "/v1/payments", 418, {})
