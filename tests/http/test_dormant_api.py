"""Last uses in a user's detail (R-CNIL-1) and the dormant rights report (R-CNIL-3 … R-CNIL-6):
``GET /v1/dormant-rights`` and ``GET /v1/organisations/<org>/dormant-rights``.

Over the demo (SQLite, and PostgreSQL when asked), with last uses written as the decision log's
shipper writes them. In the demo, mairie-montreuil's rights held today through memberships are
bruno.petit's (cdap T1 and T18 through CCAS and CCAS-INSTRUCTION) and chloe.roux's (cdap T1
through CCAS-ACCUEIL), all since 730 days (its adonis subscription closed 10 days ago).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import Membership, User
from pdp.records.last_use import LastUseWriter
from pdp.services.dormant import DormantReport
from pdp.web.container import services

from support.actors import Api
from support.constants import (
    HABITAT,
    MAIRIE,
    MAIRIE_CODE,
    MANAGER,
    OPERATOR,
    PARTNER_ADMIN,
    SECRET,
    MakeApp,
)

DORMANT = f"{MAIRIE}/dormant-rights"
NATIONAL = "/v1/dormant-rights"


@pytest.fixture
def portal(make_app: MakeApp) -> Iterator[tuple[Api, Flask]]:
    app, _ = make_app(jwt_secret=SECRET)
    yield Api(app.test_client()), app


@pytest.fixture
def api(portal: tuple[Api, Flask]) -> Api:
    return portal[0]


def used(app: Flask, uses: dict[tuple[str, str, str], dt.date]) -> None:
    """Last uses, as the shipper upserts them."""
    db = services(app).db
    with db.begin() as conn:
        LastUseWriter(db.dialect.name).write(conn, uses)


def report(api: Api, who: str, path: str = DORMANT, **query: Any) -> dict[str, Any]:
    body = api.get(who, path, **query)
    DormantReport.model_validate(body)  # the declared model
    return body


def rights(body: dict[str, Any]) -> dict[str, list[tuple[str, str, list[str], str, str | None]]]:
    """Per login: (service, role, groups, held_since, last_used_on) of each dormant right."""
    return {
        u["login"]: [
            (r["service"], r["role"], r["groups"], r["held_since"], r["last_used_on"])
            for r in u["rights"]
        ]
        for u in body["users"]
    }


def iso(day: dt.date, delta: int = 0) -> str:
    return (day + dt.timedelta(days=delta)).isoformat()


# -- R-CNIL-1: the user's detail --------------------------------------------------------------


def test_user_detail_shows_each_right_and_its_last_use_R_CNIL_1(
    portal: tuple[Api, Flask], today: dt.date
) -> None:
    api, app = portal
    used(
        app,
        {
            ("bruno.petit", "cdap", "T1"): today,
            ("bruno.petit", "dgfip", "enquete"): today - dt.timedelta(days=100),  # not held now
            ("chloe.roux", "cdap", "T18"): today,  # someone else's
        },
    )
    detail = api.get(PARTNER_ADMIN, f"{MAIRIE}/users/bruno.petit")["user"]
    assert detail["last_uses"] == [
        {"service": "cdap", "role": "T1", "last_used_on": today.isoformat()},
        {"service": "cdap", "role": "T18", "last_used_on": None},
        {"service": "dgfip", "role": "enquete", "last_used_on": iso(today, -100)},
    ]
    # The lookup by login alone answers the same.
    assert api.get(OPERATOR, "/v1/users/bruno.petit")["user"]["last_uses"] == detail["last_uses"]


# -- R-CNIL-3: what is dormant ----------------------------------------------------------------


def test_rights_held_long_enough_and_never_used_are_dormant_R_CNIL_3(
    api: Api, today: dt.date
) -> None:
    body = report(api, PARTNER_ADMIN)
    assert (body["organisation"], body["days"], body["at"]) == (MAIRIE_CODE, 90, iso(today))
    assert body["unused_since"] == iso(today, -90)
    since = iso(today, -730)
    # emma's closed group, david's closed account, fabien's future one, the closed adonis
    # subscription bring nothing today.
    assert rights(body) == {
        "bruno.petit": [
            ("cdap", "T1", ["CCAS", "CCAS-INSTRUCTION"], since, None),
            ("cdap", "T18", ["CCAS", "CCAS-INSTRUCTION"], since, None),
        ],
        "chloe.roux": [("cdap", "T1", ["CCAS-ACCUEIL"], since, None)],
    }
    assert (body["dormant_users"], body["dormant_rights"]) == (2, 3)


def test_a_right_counts_from_the_day_it_was_first_held_R_CNIL_3(
    demo_db: str, make_app: MakeApp, today: dt.date
) -> None:
    # chloe.roux's membership of CCAS-ACCUEIL, moved to 10 days ago: her cdap T1 is dormant
    # after 10 days unused, not after 11 (nor 90).
    db = make_engine(demo_db)
    try:
        with db.begin() as conn:
            conn.execute(
                update(Membership)
                .where(
                    Membership.user_id
                    == select(User.id).where(User.login == "chloe.roux").scalar_subquery()
                )
                .values(opens_on=today - dt.timedelta(days=10))
            )
    finally:
        db.dispose()
    app, _ = make_app(jwt_secret=SECRET)
    api = Api(app.test_client())
    assert rights(report(api, PARTNER_ADMIN, days=10))["chloe.roux"] == [
        ("cdap", "T1", ["CCAS-ACCUEIL"], iso(today, -10), None)
    ]
    assert "chloe.roux" not in rights(report(api, PARTNER_ADMIN, days=11))
    assert "chloe.roux" not in rights(report(api, PARTNER_ADMIN))


def test_a_use_within_the_days_wakes_a_right_R_CNIL_3(
    portal: tuple[Api, Flask], today: dt.date
) -> None:
    api, app = portal
    used(
        app,
        {
            ("bruno.petit", "cdap", "T1"): today,
            ("bruno.petit", "cdap", "T18"): today - dt.timedelta(days=90),  # exactly 90: dormant
            ("chloe.roux", "cdap", "T1"): today - dt.timedelta(days=89),  # within: awake
        },
    )
    body = report(api, OPERATOR)
    assert rights(body) == {
        "bruno.petit": [
            ("cdap", "T18", ["CCAS", "CCAS-INSTRUCTION"], iso(today, -730), iso(today, -90))
        ]
    }
    assert (body["dormant_users"], body["dormant_rights"]) == (1, 1)


def test_national_report_is_every_organisations_report_R_CNIL_3(
    portal: tuple[Api, Flask], today: dt.date
) -> None:
    api, app = portal
    used(app, {("chloe.roux", "cdap", "T1"): today})
    national = report(api, OPERATOR, NATIONAL)
    assert national["organisation"] is None
    organisations = sorted({u["organisation"] for u in national["users"]})
    assert MAIRIE_CODE in organisations and len(organisations) > 1
    for code in organisations:
        alone = report(api, OPERATOR, f"/v1/organisations/{code}/dormant-rights")
        assert alone["users"] == [u for u in national["users"] if u["organisation"] == code]
    # Each dormant right is one the access document (the engine's own listing) shows as
    # brought by a group, for every group named.
    for code in organisations:
        r = api.call(OPERATOR, "GET", f"/v1/organisations/{code}/access")
        lines = [orjson.loads(line) for line in r.data.splitlines()]
        held = {(x["login"], x["service"], x["role"], x["group"]) for x in lines}
        for user in (u for u in national["users"] if u["organisation"] == code):
            for right in user["rights"]:
                for group in right["groups"]:
                    assert (user["login"], right["service"], right["role"], group) in held


# -- R-CNIL-5: who reads it -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        (PARTNER_ADMIN, NATIONAL, 403),  # nationally: operators only
        (MANAGER, DORMANT, 403),  # managers do not read the whole organisation
        ("gilles.bernard", DORMANT, 403),  # another organisation's partner admin
        ("gilles.bernard", f"{HABITAT}/dormant-rights", 200),
        (OPERATOR, "/v1/organisations/nowhere/dormant-rights", 404),
    ],
)
def test_who_may_read_the_report_R_CNIL_5(api: Api, who: str, path: str, status: int) -> None:
    body = api.get(who, path, status)
    if status == 200:
        DormantReport.model_validate(body)
    elif status == 404:
        assert body["error"]["code"] == "UNKNOWN_ORGANISATION"
    else:
        assert "users" not in body and body["error"]["code"]


def test_no_token_no_report(api: Api) -> None:
    assert api.call(None, "GET", DORMANT).status_code == 401


# -- R-CNIL-4: the number of days -------------------------------------------------------------


@pytest.mark.parametrize("days", ["0", "-1", "abc", "3661", "1.5", " ", "", "٣", "9" * 40])
def test_days_must_be_a_whole_number_from_1_to_3660_R_CNIL_4(api: Api, days: str) -> None:
    body = api.get(OPERATOR, DORMANT, 400, days=days)
    assert body["error"]["code"] == "INVALID_DAYS"
    assert body["error"]["details"] == {"min": 1, "max": 3660}


def test_bounds_of_days_and_unknown_fields_R_CNIL_4(api: Api) -> None:
    assert report(api, OPERATOR, days="1")["days"] == 1
    assert report(api, OPERATOR, days="3660")["days"] == 3660
    assert api.get(OPERATOR, DORMANT, 400, day="3")["error"]["code"] == "UNKNOWN_FIELD"


# -- R-CNIL-6: the metrics ---------------------------------------------------------------------


def test_the_national_report_sets_the_metrics_R_CNIL_6(api: Api) -> None:
    body = report(api, OPERATOR, NATIONAL)
    assert REGISTRY.get_sample_value("pdp_dormant_users") == body["dormant_users"] > 0
    assert REGISTRY.get_sample_value("pdp_dormant_rights") == body["dormant_rights"]
    counted = REGISTRY.get_sample_value("pdp_dormant_counted_timestamp_seconds")
    # Another number of days, or one organisation, leaves the national 90-day counts alone.
    report(api, OPERATOR, NATIONAL, days=1)
    report(api, OPERATOR)
    assert REGISTRY.get_sample_value("pdp_dormant_users") == body["dormant_users"]
    assert REGISTRY.get_sample_value("pdp_dormant_counted_timestamp_seconds") == counted
