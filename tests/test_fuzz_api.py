"""Fuzzing the whole API from its own OpenAPI document (schemathesis, issue 6).

Every operation of ``GET /v1/openapi.json`` is called with examples schemathesis generates from
the document — valid ones and, for the negative mode, invalid ones — with valid credentials:
the tests' API key (every service) and the JWT of an actor (an operator, a partner admin). For
every answer:

- no 5xx (``not_a_server_error``): bad input gets a stable 4xx code, never a stack trace;
- the status code is one the document lists for the operation (``status_code_conformance``);
- the body is JSON and matches the document's schema for that status
  (``content_type_conformance``, ``response_schema_conformance``);
- input the document calls invalid is refused (``negative_data_rejection``);
- an operation that declares credentials refuses a call without them (``ignored_auth``).

Each test runs over its own copy of the demo data (writes by the fuzzer stay there). The number
of examples per operation is bounded (``EXAMPLES``, ``PDP_FUZZ_EXAMPLES`` to change it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from admin_api import API_KEY, SECRET
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

import pdp.app  # noqa: F401  (registers every operation)
from pdp.api.decisions import registry
from pdp.auth import mint
from pdp.config import Settings
from pdp.decision_log import MemoryLog

EXAMPLES = int(os.environ.get("PDP_FUZZ_EXAMPLES", "100"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
ACTORS = ("op.caf751", "alice.martin")  # an operator; a partner admin of mairie-montreuil


@pytest.fixture
def backend() -> str:
    """The fuzzer runs on SQLite (the same service code serves PostgreSQL, tested elsewhere)."""
    return "sqlite"


@pytest.fixture
def fuzzed_app(make_app: Callable[..., tuple[Flask, MemoryLog]]) -> Flask:
    app, _ = make_app(jwt_secret=SECRET)
    return app


# The document the service serves at /v1/openapi.json, built the same way (pdp.app imports
# every blueprint, which registers its operations).
schema = schemathesis.openapi.from_dict(registry.document("pdp decision API", "1"))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_holds_to_its_document(case: Any, fuzzed_app: Flask) -> None:
    # This test's app (over its own copy of the demo): the WSGI transport calls it in-process.
    case.operation.app = case.operation.schema.app = fuzzed_app
    # The credentials the operation declares, no others: so that ``ignored_auth`` can take them
    # away and expect a refusal.
    declared = {name for need in case.operation.definition.raw.get("security", []) for name in need}
    # A negative example may have dropped or mangled the credential headers on purpose: adding
    # valid ones back would make it a valid request, wrongly reported as "accepted".
    negative_headers = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
    for actor in ACTORS:  # each example is sent as each actor
        headers: dict[str, str] = {}
        if "apiKey" in declared and not negative_headers:
            headers["X-Api-Key"] = API_KEY
        if "bearerAuth" in declared and not negative_headers:
            headers["Authorization"] = f"Bearer {mint(Settings(jwt_secret=SECRET), actor)}"
        case.call_and_validate(base_url="http://localhost", headers=headers, checks=CHECKS)


def test_the_fuzzed_document_is_the_served_one(fuzzed_app: Flask) -> None:
    served = fuzzed_app.test_client().get("/v1/openapi.json").get_json()
    assert served == registry.document("pdp decision API", "1")
    assert len(served["paths"]) >= 25
