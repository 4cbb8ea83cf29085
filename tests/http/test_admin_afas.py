"""Afas profiles over HTTP (R-AFAS-1..3), on the demo data (pdp.services.demo), on every driver.

In asso-entraide, karim.diallo is the partner admin and a member of AFAS-HABILITER
(afas:habiliter); lea.fontaine has the profile "declaration" and is a member of AFAS-DECLARER
(afas:declarer, not habiliter); marc.chevalier has the profile "consultation" and no group.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from flask import Flask

from pdp.records.decision_log import MemoryLog
from pdp.services.admin.responses import AfasProfiles, AfasProfileWritten

from support.actors import Api
from support.admin_bodies import day
from support.constants import ASSO, SECRET

MARC = f"{ASSO}/users/marc.chevalier/afas-profiles"
LEA = f"{ASSO}/users/lea.fontaine/afas-profiles"
KARIM = "karim.diallo"


@pytest.fixture
def api(make_app: Callable[..., tuple[Flask, MemoryLog]]) -> Api:
    """The app over the demo data, with HS256 tokens signed by SECRET."""
    app, _ = make_app(jwt_secret=SECRET)
    return Api(app.test_client())


def test_habiliter_member_gives_a_profile_R_AFAS_2(api: Api, today: dt.date) -> None:
    assert not api.allowed(user="marc.chevalier", service="afas", role="suivi_dossiers")
    body = api.ok(KARIM, "POST", MARC, {"profile": "suivi_dossiers"}, 201)
    AfasProfileWritten.model_validate(body)
    assert body["profile"] == {
        "user": "marc.chevalier",
        "profile": "suivi_dossiers",
        "opens_on": today.isoformat(),
        "closes_on": None,
    }
    assert body["revision"] == api.revision()
    # R-AFAS-1: the profile grants afas on its own, from the next decision.
    assert api.allowed(user="marc.chevalier", service="afas", role="suivi_dossiers")
    listed = api.ok(KARIM, "GET", MARC)
    AfasProfiles.model_validate(listed)
    assert [(p["profile"], p["open"]) for p in listed["profiles"]] == [
        ("consultation", True),
        ("suivi_dossiers", True),
    ]


def test_a_future_profile(api: Api, today: dt.date) -> None:
    api.ok(KARIM, "POST", MARC, {"profile": "gestion_paiements", "opens_on": day(today, 3)}, 201)
    assert not api.allowed(user="marc.chevalier", service="afas", role="gestion_paiements")
    assert api.allowed(
        user="marc.chevalier", service="afas", role="gestion_paiements", at=day(today, 3)
    )
    listed = api.ok(KARIM, "GET", MARC)["profiles"]
    assert ("gestion_paiements", False) in [(p["profile"], p["open"]) for p in listed]
    # Removing a profile not yet started: it never opens (R-TIME-2: the row is kept).
    api.ok(KARIM, "DELETE", f"{MARC}/gestion_paiements")
    assert not api.allowed(
        user="marc.chevalier", service="afas", role="gestion_paiements", at=day(today, 3)
    )


def test_without_habiliter_refused_R_AFAS_2(api: Api) -> None:
    # lea is in AFAS-DECLARER, not AFAS-HABILITER: being in an Afas group is not enough.
    start = api.revision()
    err = api.error(
        "lea.fontaine", "POST", MARC, 403, "AFAS_HABILITER_REQUIRED", {"profile": "suivi_dossiers"}
    )
    assert "R-AFAS-2" in err["message"]
    api.error("lea.fontaine", "GET", MARC, 403, "AFAS_HABILITER_REQUIRED")
    api.error("lea.fontaine", "DELETE", f"{MARC}/consultation", 403, "AFAS_HABILITER_REQUIRED")
    assert api.revision() == start


def test_admins_of_other_organisations_and_operators_refused_R_AFAS_2(api: Api) -> None:
    body = {"profile": "suivi_dossiers"}
    api.error("alice.martin", "POST", MARC, 403, "OTHER_ORGANISATION", body)
    api.error("alice.martin", "GET", MARC, 403, "OTHER_ORGANISATION")
    api.error("op.caf751", "POST", MARC, 403, "NOT_PERMITTED", body)
    api.error(None, "GET", MARC, 401, "UNAUTHENTICATED")


def test_profile_validation(api: Api, today: dt.date) -> None:
    api.error(KARIM, "POST", MARC, 400, "UNKNOWN_PROFILE", {"profile": "habiliter"})
    api.error(KARIM, "POST", MARC, 409, "PROFILE_EXISTS", {"profile": "consultation"})
    api.error(
        KARIM,
        "POST",
        MARC,
        400,
        "RETROACTIVE_DATE",
        {"profile": "suivi_dossiers", "opens_on": day(today, -1)},
    )
    api.error(KARIM, "DELETE", f"{MARC}/declaration", 404, "NO_SUCH_PROFILE")
    # The organisation in the path must be the user's.
    api.error(
        KARIM,
        "POST",
        "/v1/organisations/mairie-montreuil/users/marc.chevalier/afas-profiles",
        404,
        "UNKNOWN_USER",
        {"profile": "suivi_dossiers"},
    )
    # R-AFAS-1: a user not open on the profile's first day gets none.
    new = {
        "login": "noe.bientot",
        "first_name": "Noé",
        "last_name": "Bientôt",
        "email": "noe@asso.fr",
        "opens_on": day(today, 7),
    }
    api.ok(KARIM, "POST", f"{ASSO}/users", new, 201)
    path = f"{ASSO}/users/noe.bientot/afas-profiles"
    api.error(KARIM, "POST", path, 409, "USER_NOT_OPEN", {"profile": "declaration"})
    api.ok(KARIM, "POST", path, {"profile": "declaration", "opens_on": day(today, 7)}, 201)


def test_closing_a_user_with_profiles_refused_R_AFAS_3(api: Api, today: dt.date) -> None:
    user = f"{ASSO}/users/lea.fontaine"
    closing = {"closes_on": today.isoformat()}
    start = api.revision()
    err = api.error(KARIM, "PATCH", user, 409, "AFAS_PROFILES_REMAIN", closing)
    assert "R-AFAS-3" in err["message"]
    assert api.revision() == start
    assert api.allowed(user="lea.fontaine", service="afas", role="declaration")

    removed = api.ok(KARIM, "DELETE", f"{LEA}/declaration")
    assert removed["profile"]["closes_on"] == today.isoformat()
    assert not api.allowed(user="lea.fontaine", service="afas", role="declaration")
    # R-TIME-2: nothing deleted, yesterday is still answered as it was.
    assert api.allowed(user="lea.fontaine", service="afas", role="declaration", at=day(today, -1))
    assert api.ok(KARIM, "GET", LEA)["profiles"] == []

    closed = api.ok(KARIM, "PATCH", user, closing)
    assert closed["user"]["closes_on"] == today.isoformat()
    assert not api.allowed(user="lea.fontaine", service="afas")  # R-USR-4
