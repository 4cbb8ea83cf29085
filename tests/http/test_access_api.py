"""``GET /v1/organisations/<org>/access``: who may use what, as a streamed document (R-ADM-8).

Over the demo (SQLite, and PostgreSQL when asked): JSON Lines by default, CSV on demand, the
same rows in both; read by operators and by the organisation's partner admins only (R-ADM-5's
table, action ``access.read``), every read decided and logged (R-ADM-7); bad input answered
with 400 and a stable code, an unknown organisation with 404, whoever asks; the answer a
generator, sent chunk by chunk; and every line what ``POST /v1/check`` answers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from flask import Flask

from pdp.core.catalogue import load_catalogue
from pdp.records.decision_log import MemoryLog
from pdp.services import access
from pdp.services.access import COLUMNS
from pdp.web.api.access import AccessLine

from support.actors import Api
from support.constants import GP, MAIRIE, MANAGER, OPERATOR, PARTNER_ADMIN, SECRET, MakeApp
from support.decision_api import DEMO_LOGINS

ACCESS = f"{MAIRIE}/access"


@pytest.fixture
def portal(make_app: MakeApp) -> Iterator[tuple[Api, Flask, MemoryLog]]:
    app, log = make_app(jwt_secret=SECRET)
    yield Api(app.test_client(), log=log), app, log


@pytest.fixture
def api(portal: tuple[Api, Flask, MemoryLog]) -> Api:
    return portal[0]


def lines(api: Api, who: str, path: str = ACCESS, **query: Any) -> list[dict[str, Any]]:
    """The document as JSON Lines, each line checked against the declared model."""
    r = api.call(who, "GET", path, query=query)
    assert r.status_code == 200, r.data[:300]
    assert r.mimetype == "application/x-ndjson"
    out = [orjson.loads(line) for line in r.data.splitlines()]
    for line in out:
        assert tuple(line) == COLUMNS
        AccessLine.model_validate(line)
    return out


def mairie_today(today: dt.date) -> list[dict[str, Any]]:
    at = today.isoformat()
    rows = [
        ("bruno.petit", "T1", "CCAS"),
        ("bruno.petit", "T1", "CCAS-INSTRUCTION"),
        ("bruno.petit", "T18", "CCAS"),
        ("bruno.petit", "T18", "CCAS-INSTRUCTION"),
        ("chloe.roux", "T1", "CCAS-ACCUEIL"),
    ]
    return [
        dict(
            zip(
                COLUMNS,
                ("mairie-montreuil", login, "cdap", role, "931", "group", group, at),
                strict=True,
            )
        )
        for login, role, group in rows
    ]


# -- What it says ------------------------------------------------------------------------------


def test_json_lines_by_default(api: Api, today: dt.date) -> None:
    # Closed david.leroy, fabien.morel (opens in 30 days), emma.garnier (her group is closed),
    # alice.martin (in no group, R-ADM-2): no line. Adonis has expired (R-CON-2).
    assert lines(api, OPERATOR) == mairie_today(today)


def test_csv_on_demand_with_a_header_and_the_same_rows(api: Api, today: dt.date) -> None:
    r = api.call(OPERATOR, "GET", ACCESS, query={"format": "csv"})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] == (
        f'attachment; filename="access-mairie-montreuil-{today.isoformat()}.csv"'
    )
    assert r.headers["X-Policy-Revision"] == "1"
    text = r.data.decode()
    assert text.splitlines()[0] == ",".join(COLUMNS)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed == [{k: v or "" for k, v in row.items()} for row in mairie_today(today)]


def test_afas_profiles_have_no_group(api: Api, today: dt.date) -> None:
    # R-AFAS-1: a per-user profile grants afas on its own; its line names no group.
    got = lines(api, OPERATOR, "/v1/organisations/asso-entraide/access")
    assert [(r["login"], r["role"], r["source"], r["group"]) for r in got] == [
        ("karim.diallo", "habiliter", "group", "AFAS-HABILITER"),
        ("lea.fontaine", "declaration", "afas_profile", None),
        ("lea.fontaine", "declarer", "group", "AFAS-DECLARER"),
        ("marc.chevalier", "consultation", "afas_profile", None),
    ]
    csv_text = api.call(
        OPERATOR, "GET", "/v1/organisations/asso-entraide/access", query={"format": "csv"}
    ).data.decode()
    assert f"asso-entraide,marc.chevalier,afas,consultation,751,afas_profile,,{today}" in csv_text


def test_one_line_per_caf_of_the_subscription(api: Api) -> None:
    # R-CON-3: ccas-grand-paris has Cdap under its conventions with the Cafs 751 and 931.
    got = lines(api, "nadia.benali", f"{GP}/access")  # the partner admin of GP
    assert [(r["login"], r["role"], r["caf"], r["group"]) for r in got] == [
        ("nadia.benali", "T1", "751", "CONSULTATION"),
        ("nadia.benali", "T1", "931", "CONSULTATION"),
    ]


@pytest.mark.parametrize(
    ("offset", "wanted"),
    [
        pytest.param(-11, {"adonis", "cdap"}, id="R-CON-2-adonis-still-subscribed"),
        pytest.param(-6, {"cdap"}, id="R-GRP-2-archives-still-open"),
        pytest.param(30, {"cdap"}, id="R-TIME-1-fabien-opens"),
    ],
)
def test_another_day(api: Api, today: dt.date, offset: int, wanted: set[str]) -> None:
    at = (today + dt.timedelta(days=offset)).isoformat()
    got = lines(api, OPERATOR, at=at)
    assert {r["at"] for r in got} == {at}
    assert {r["service"] for r in got} == wanted
    logins = {r["login"] for r in got}
    assert ("emma.garnier" in logins) is (offset < -5)  # CCAS-ARCHIVES closed 5 days ago
    assert ("fabien.morel" in logins) is (offset == 30)
    assert ("david.leroy" in logins) is (offset < -30)


ORGANISATIONS = ("mairie-montreuil", "habitat-93", "sip-lyon", "asso-entraide", "ccas-grand-paris")
CATALOGUE = load_catalogue()


@pytest.mark.parametrize("offset", [-11, -6, 0, 30])
def test_every_line_and_every_denial_is_what_check_answers(
    api: Api, today: dt.date, offset: int
) -> None:
    at = (today + dt.timedelta(days=offset)).isoformat()
    got = [
        r
        for org in ORGANISATIONS
        for r in lines(api, OPERATOR, f"/v1/organisations/{org}/access", at=at)
    ]
    assert got
    for login in DEMO_LOGINS:
        mine = [r for r in got if r["login"] == login]
        queries = [
            {"user": login, "service": service, "role": role, "caf": caf, "at": at}
            for service, spec in CATALOGUE.services.items()
            for role in (None, *spec.roles, *spec.user_profiles)
            for caf in (None, "751", "931", "691", "131")
        ]
        r = api.client.post("/v1/check/batch", json={"checks": queries})
        assert r.status_code == 200, r.get_json()
        for query, answer in zip(queries, r.get_json()["results"], strict=True):
            wanted = {
                (row["group"], row["source"])
                for row in mine
                if row["service"] == query["service"]
                and query["role"] in (None, row["role"])
                and query["caf"] in (None, row["caf"])
            }
            assert answer["allowed"] is bool(wanted), query
            assert {(g["group"], g["source"]) for g in answer["grants"]} == wanted, query


# -- Who may read it ---------------------------------------------------------------------------


def test_operators_and_the_organisations_partner_admins_read_it(
    portal: tuple[Api, Flask, MemoryLog], today: dt.date
) -> None:
    api, _app, log = portal
    assert lines(api, PARTNER_ADMIN) == lines(api, OPERATOR) == mairie_today(today)
    # Each read is an administrative decision, logged like every other (R-ADM-7).
    reads = [e for e in log.entries if e.get("action") == "access.read"]
    assert [(e["kind"], e["user"], e["target"], e["allowed"], e["reason"]) for e in reads] == [
        ("admin", PARTNER_ADMIN, "organisation:mairie-montreuil", True, "ALLOWED"),
        ("admin", OPERATOR, "organisation:mairie-montreuil", True, "ALLOWED"),
    ]
    assert {e["organisation"] for e in reads} == {"mairie-montreuil"}


@pytest.mark.parametrize(
    ("who", "path", "code"),
    [
        pytest.param(
            PARTNER_ADMIN, f"{GP}/access", "OTHER_ORGANISATION", id="another-organisation"
        ),
        pytest.param(MANAGER, ACCESS, "NOT_PERMITTED", id="a-manager"),
        pytest.param("chloe.roux", ACCESS, "NOT_PERMITTED", id="a-user"),
        pytest.param("nadia.benali", ACCESS, "OTHER_ORGANISATION", id="another-partner-admin"),
    ],
)
def test_others_are_refused_with_the_engines_reason(
    api: Api, who: str, path: str, code: str
) -> None:
    out = api.refused(who, "GET", path, status=403, code=code)
    assert out["error"]["details"]["action"] == "access.read"


@pytest.mark.parametrize("who", [OPERATOR, PARTNER_ADMIN, MANAGER])
def test_an_unknown_organisation_is_404_whoever_asks(api: Api, who: str) -> None:
    api.error(who, "GET", "/v1/organisations/nope/access", 404, "UNKNOWN_ORGANISATION")


def test_no_token_or_a_closed_user_is_401(api: Api) -> None:
    r = api.call(None, "GET", ACCESS)
    assert r.status_code == 401
    api.error("david.leroy", "GET", ACCESS, 401, "ACTOR_CLOSED")


@pytest.mark.parametrize(
    ("query", "code"),
    [
        pytest.param("at=2026-02-30", "VALIDATION_ERROR", id="no-such-day"),
        pytest.param("at=tomorrow", "VALIDATION_ERROR", id="not-a-day"),
        pytest.param("at=1780000000", "VALIDATION_ERROR", id="a-timestamp"),
        pytest.param("format=xml", "VALIDATION_ERROR", id="unknown-format"),
        pytest.param("format=jsonl", "VALIDATION_ERROR", id="the-command-lines-name"),
        pytest.param("organisation=sip-lyon", "UNKNOWN_FIELD", id="unknown-parameter"),
        pytest.param("min_revision=-1", "VALIDATION_ERROR", id="negative-revision"),
    ],
)
def test_bad_input_is_400_with_a_stable_code(api: Api, query: str, code: str) -> None:
    api.error(OPERATOR, "GET", f"{ACCESS}?{query}", 400, code)


def test_min_revision_not_in_the_store_is_409(api: Api) -> None:
    api.error(OPERATOR, "GET", f"{ACCESS}?min_revision=99", 409, "REVISION_UNKNOWN")
    assert lines(api, OPERATOR, min_revision=1)


# -- Streamed ----------------------------------------------------------------------------------


def _dispatch(app: Flask, api: Api, who: str, path: str) -> Any:
    """The view's own Response, before the WSGI layer wraps it."""
    with app.test_request_context(path, headers=api.headers(who)):
        return app.full_dispatch_request()


def test_the_answer_is_a_generator_sent_chunk_by_chunk(
    portal: tuple[Api, Flask, MemoryLog], monkeypatch: pytest.MonkeyPatch, today: dt.date
) -> None:
    api, app, _log = portal
    asked: list[str] = []
    real = access.user_rows

    def counted(*args: Any) -> list[access.AccessRow]:
        asked.append(args[2])
        return real(*args)

    monkeypatch.setattr(access, "user_rows", counted)
    monkeypatch.setattr(access, "CHUNK_BYTES", 100)
    response = _dispatch(app, api, OPERATOR, ACCESS)
    assert response.status_code == 200
    assert response.is_streamed
    assert asked == []  # nothing computed yet: the rows are made as the answer is sent
    chunks = iter(response.response)
    first = next(chunks)
    assert orjson.loads(first.splitlines()[0])["login"] == "bruno.petit"
    assert asked == ["alice.martin", "bruno.petit"]  # by login, only as far as needed
    rest = list(chunks)
    assert len(rest) >= 2
    body = b"".join([first, *rest])
    assert [orjson.loads(line) for line in body.splitlines()] == mairie_today(today)
    assert asked[-1] == "fabien.morel"
    # An error is a plain JSON answer, not a stream.
    refused = _dispatch(app, api, MANAGER, ACCESS)
    assert refused.status_code == 403
    assert not refused.is_streamed


def test_the_document_is_in_the_openapi_document(api: Api) -> None:
    doc = api.client.get("/v1/openapi.json").get_json()
    op = doc["paths"]["/v1/organisations/{org}/access"]["get"]
    assert set(op["responses"]["200"]["content"]) == {"application/x-ndjson", "text/csv"}
    assert {p["name"] for p in op["parameters"]} == {"org", "at", "format", "min_revision"}
    assert op["security"] == [{"bearerAuth": []}]
    ok = doc["paths"]["/v1/users/{login}/permissions"]["get"]["responses"]["200"]
    assert set(ok["content"]) == {"application/json"}
