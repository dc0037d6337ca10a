"""Checks of real HTTP answers against the OpenAPI document the switch serves
(switch/entrypoints/openapi.json): the response schema of (method, path template, status)
validates the JSON body, with JSON Schema 2020-12 (OpenAPI 3.1's dialect)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from switch.entrypoints.ops_edge import openapi_document


@cache
def document() -> dict[str, Any]:
    return json.loads(openapi_document())


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    """The schema, with the document's components beside it so that its "#/components/..."
    references resolve as they do in the document."""
    return Draft202012Validator({**schema, "components": document()["components"]})


def response_schema(method: str, template: str, status: int) -> dict[str, Any]:
    operation = document()["paths"][template][method.lower()]
    response = operation["responses"][str(status)]  # KeyError: a status the document does not list
    return response["content"]["application/json"]["schema"]


def check(method: str, template: str, status: int, body: Any) -> None:
    """Raise jsonschema.ValidationError when `body` is not what the document says
    (method, template, status) answers; KeyError when the document lists no such answer."""
    _validator(response_schema(method, template, status)).validate(body)
