"""Fuzzing the whole API from its own OpenAPI document (schemathesis).

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

Each example is sent once more for each string it holds, that string replaced by hostile text
(control characters, NUL, lone surrogates, very long values): never a 5xx, control characters
always refused, none reaching the decision log; at the end of each operation's run, no text
column of the store holds one.

Each test runs over its own copy of the demo data (writes by the fuzzer stay there), on SQLite
and on PostgreSQL. The number of examples per operation is bounded (``EXAMPLES``,
``PDP_FUZZ_EXAMPLES`` to change it; on PostgreSQL ``PG_EXAMPLES``, ``PDP_FUZZ_PG_EXAMPLES``).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import schemathesis
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

import pdp.web.app  # noqa: F401  (registers every operation)
from pdp.core.text import has_forbidden
from pdp.records.decision_log import MemoryLog
from pdp.web.api.docs import document

from support.actors import bearer
from support.constants import API_KEY, OPERATOR, PARTNER_ADMIN, SECRET
from support.text import forbidden_in_store, holds_forbidden

EXAMPLES = int(os.environ.get("PDP_FUZZ_EXAMPLES", "100"))
# PostgreSQL: the same operations and checks on fewer examples each, the document's coverage
# being SQLite's run's (the driver's own behaviour, constraints, errors and text columns, is met
# within a few dozen examples); PDP_FUZZ_PG_EXAMPLES raises it.
PG_EXAMPLES = int(os.environ.get("PDP_FUZZ_PG_EXAMPLES", str(min(EXAMPLES, 30))))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
ACTORS = (OPERATOR, PARTNER_ADMIN)  # an operator; a partner admin of mairie-montreuil


@pytest.fixture
def fuzzed(make_app: Callable[..., tuple[Flask, MemoryLog]], demo_db: str) -> Iterator[Fuzzed]:
    """The app over this test's copy of the demo (SQLite, and PostgreSQL when configured); at
    the end, no stored text holds a control character, whatever the fuzzer sent."""
    app, log = make_app(jwt_secret=SECRET)
    yield Fuzzed(app, log)
    assert forbidden_in_store(demo_db) == []


@dataclass
class Fuzzed:
    app: Flask
    log: MemoryLog
    logged: int = 0  # decision-log entries already checked


# Hostile text put in place of one string of each example: NUL, C0, DEL, C1, lone surrogates,
# very long values. JSON bodies carry a lone surrogate as an escape; URLs as its UTF-8 bytes.
HOSTILE = (
    "a\x00b",
    "\x00",
    "x\x1by",
    "\x7f",
    "caf\x85",
    "\x9f",
    "a\ud800b",
    "\udfff",
    "é" * 5000,
    "x" * 100_000,
)


def _strings(case: Any) -> list[tuple[str, str]]:
    """(location, name) of each string the example sends: path, query, top-level body."""
    found = []
    for location, values in (("path", case.path_parameters), ("query", case.query)):
        found.extend((location, k) for k, v in (values or {}).items() if isinstance(v, str))
    if isinstance(case.body, dict):
        found.extend(("body", k) for k, v in case.body.items() if isinstance(v, str))
    return found


def _quoted(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _send_hostile(case: Any, fuzzed: Fuzzed, headers: dict[str, str]) -> None:
    """Send the example once more for each of its strings, that string made hostile: never a
    5xx; a control character (anywhere) or a lone surrogate (in a body) is refused with a 4xx;
    no such text reaches the decision log."""
    if case.method.upper() != case.operation.method.upper():
        return  # an example of a method the operation does not take (405 already checked)
    client = fuzzed.app.test_client()
    for location, name in _strings(case):
        value = HOSTILE[zlib.crc32(f"{case.operation.label}{location}{name}".encode()) % 10]
        path_params = dict(case.path_parameters or {})
        query = dict(case.query or {})
        body = dict(case.body) if isinstance(case.body, dict) else None
        {"path": path_params, "query": query, "body": body}[location][name] = value
        path = case.operation.path
        for key, raw in path_params.items():
            path = path.replace(f"{{{key}}}", _quoted(str(raw)))
        if query:
            path += "?" + urlencode(query, doseq=True, encoding="utf-8", errors="surrogatepass")
        response = client.open(
            path,
            method=case.method,
            data=None if body is None else json.dumps(body),
            headers={**headers, "Content-Type": "application/json"},
        )
        where = (case.operation.label, location, name, value[:20], response.data[:300])
        assert response.status_code < 500, where
        refused = has_forbidden(value.replace("\ud800", "").replace("\udfff", "")) or (
            location == "body" and has_forbidden(value)
        )
        if refused:
            assert 400 <= response.status_code < 500, where
    entries = fuzzed.log.entries[fuzzed.logged :]
    fuzzed.logged = len(fuzzed.log.entries)
    assert not [e for e in entries if holds_forbidden(e)]


# The document the service serves at /v1/openapi.json, built the same way (pdp.web.app imports
# every blueprint, which registers its operations).
schema = schemathesis.openapi.from_dict(document())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_operation_holds_to_its_document(case: Any, fuzzed: Fuzzed) -> None:
    """Every operation, EXAMPLES examples each, on SQLite."""
    holds_to_its_document(case, fuzzed)


@schema.parametrize()
@settings(
    max_examples=PG_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
@pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_every_operation_holds_to_its_document_on_postgres(case: Any, fuzzed: Fuzzed) -> None:
    """Every operation, PG_EXAMPLES examples each (the same checks), on PostgreSQL."""
    holds_to_its_document(case, fuzzed)


def holds_to_its_document(case: Any, fuzzed: Fuzzed) -> None:
    """Send the example as each actor, checked against the document; then its hostile forms."""
    # This test's app (over its own copy of the demo): the WSGI transport calls it in-process.
    case.operation.app = case.operation.schema.app = fuzzed.app
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
            headers.update(bearer(actor))
        case.call_and_validate(base_url="http://localhost", headers=headers, checks=CHECKS)
        if actor == ACTORS[0] and not negative_headers:
            _send_hostile(case, fuzzed, headers)


def test_the_fuzzed_document_is_the_served_one(fuzzed: Fuzzed) -> None:
    served = fuzzed.app.test_client().get("/v1/openapi.json").get_json()
    assert served == document()
    assert len(served["paths"]) >= 25
