"""What the decision API's tests (tests/http/test_api*.py) share: the demo's logins, the
drivers, SQLite as their backend, and the checks of an answer against the declared models.

The HTTP layer does not depend on the database driver: these tests run on SQLite (import the
``sqlite_backend`` fixture, named ``backend``), except the smoke test of every verb, which runs
on every driver (the decision tables and the refresh tests are the drivers' contract suite)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pytest
from flask.testing import FlaskClient
from pydantic import BaseModel
from werkzeug.test import TestResponse

from pdp.web.api.schemas import (
    CheckResponse,
    ErrorResponse,
    ServiceUsersResponse,
)

# Every login of the demo (pdp/services/demo.py), to compute expected listings independently.
DEMO_LOGINS = (
    "op.caf751",
    "alice.martin",
    "bruno.petit",
    "chloe.roux",
    "david.leroy",
    "emma.garnier",
    "fabien.morel",
    "gilles.bernard",
    "helene.fabre",
    "ines.moreau",
    "jules.lambert",
    "karim.diallo",
    "lea.fontaine",
    "marc.chevalier",
    "nadia.benali",
)


DRIVERS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(name="backend")
def sqlite_backend() -> str:
    """SQLite for this module (see DRIVERS)."""
    return "sqlite"


def days(today: dt.date, n: int) -> str:
    """ISO day ``n`` days from ``today``."""
    return (today + dt.timedelta(days=n)).isoformat()


def valid(model: type[BaseModel], response: TestResponse) -> dict[str, Any]:
    """Return the JSON body after checking it against the API's declared response model."""
    body = response.get_json()
    assert isinstance(body, dict), response.data
    model.model_validate(body)
    return body


def js(response: TestResponse) -> Any:
    """The JSON body of a response (None when it is not JSON)."""
    return response.get_json(silent=True)


def check(client: FlaskClient, **body: Any) -> dict[str, Any]:
    """POST /v1/check; the answer must be a 200 CheckResponse."""
    response = client.post("/v1/check", json=body)
    assert response.status_code == 200, response.get_json()
    return valid(CheckResponse, response)


def error(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    """Assert a JSON error answer with ``status`` and ``code``; return its ``error`` body."""
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    assert b"Traceback" not in response.data
    body = valid(ErrorResponse, response)
    assert set(body) == {"error"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def grant_set(grants: Iterable[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(g["group"], g["service"], g["role"], g["source"]) for g in grants}


def pages(client: FlaskClient, url: str, limit: int) -> list[dict[str, Any]]:
    """Follow next_cursor from the first page to the last; return every page."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    sep = "&" if "?" in url else "?"
    while True:
        query = f"{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url + query)
        assert response.status_code == 200, response.json
        page = valid(ServiceUsersResponse, response)
        assert len(page["users"]) <= limit
        out.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return out
        assert len(out) < 50, "pagination does not end"
