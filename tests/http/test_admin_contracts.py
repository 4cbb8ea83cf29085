"""The Caf side of the administration API over HTTP (R-CON-4, R-ADM-1, R-ADM-5): organisations,
conventions, subscriptions and partner admins, on the demo data (pdp.services.demo), on every
driver.

op.caf751 is an operator; alice.martin is the one partner admin of mairie-montreuil; bruno.petit
manages its group CCAS, whose adonis subscription expired 10 days ago while CCAS still holds
adonis:acces.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from flask import Flask

from pdp.records.decision_log import MemoryLog
from pdp.services.admin.responses import (
    AdminWritten,
    ContractOut,
    ConventionWritten,
    OrganisationWritten,
    SubscriptionWritten,
)

from support.actors import Api
from support.admin_bodies import day
from support.constants import CONVENTION as MAIRIE_CONV
from support.constants import MAIRIE, OPERATOR, SECRET


@pytest.fixture
def api(make_app: Callable[..., tuple[Flask, MemoryLog]]) -> Api:
    """The app over the demo data, with HS256 tokens signed by SECRET."""
    app, _ = make_app(jwt_secret=SECRET)
    return Api(app.test_client())


# -- Operators register the contract (R-CON-4) ---------------------------------------------


def test_operator_registers_organisation_convention_subscription_R_CON_4(
    api: Api, today: dt.date
) -> None:
    start = api.revision()
    org = api.ok(
        OPERATOR,
        "POST",
        "/v1/organisations",
        {"code": "mairie-bondy", "name": "Mairie de Bondy", "kind": "mairie"},
        201,
    )
    OrganisationWritten.model_validate(org)
    assert org["organisation"] == {
        "code": "mairie-bondy",
        "name": "Mairie de Bondy",
        "kind": "mairie",
        "opens_on": today.isoformat(),  # default today
        "closes_on": None,
    }
    assert org["revision"] == start + 1 == api.revision()

    base = "/v1/organisations/mairie-bondy"
    conv = api.ok(
        OPERATOR, "POST", f"{base}/conventions", {"caf": "931", "reference": "CONV-B"}, 201
    )
    ConventionWritten.model_validate(conv)
    assert conv["convention"]["caf"] == "931"
    sub = api.ok(
        OPERATOR, "POST", f"{base}/conventions/CONV-B/subscriptions", {"service": "cdap"}, 201
    )
    SubscriptionWritten.model_validate(sub)
    assert sub["subscription"]["service"] == "cdap"
    assert sub["subscription"]["opens_on"] == today.isoformat()
    # The next decision sees the write: the revision served is the write's.
    assert sub["revision"] == start + 3 == api.revision()

    admin = api.ok(
        OPERATOR,
        "POST",
        f"{base}/admins",
        {
            "new_user": {
                "login": "zoe.bondy",
                "first_name": "Zoé",
                "last_name": "Bondy",
                "email": "zoe@bondy.fr",
            }
        },
        201,
    )
    AdminWritten.model_validate(admin)
    assert admin["admin"]["login"] == "zoe.bondy"
    assert admin["created_user"]["organisation"] == "mairie-bondy"

    contract = api.ok("zoe.bondy", "GET", f"{base}/contract")  # R-ADM-5: admins read it
    ContractOut.model_validate(contract)
    assert contract["organisation"]["code"] == "mairie-bondy"
    assert [c["reference"] for c in contract["conventions"]] == ["CONV-B"]
    [subscription] = contract["conventions"][0]["subscriptions"]
    assert subscription["id"] == sub["subscription"]["id"]
    assert subscription["service"] == "cdap" and subscription["open"] is True
    assert [(a["login"], a["open"]) for a in contract["admins"]] == [("zoe.bondy", True)]


def test_a_subscription_is_usable_by_the_next_decision_R_CON_2(api: Api, today: dt.date) -> None:
    # CCAS still carries adonis:acces but the subscription expired: nothing granted (R-CON-2).
    assert not api.allowed(user="bruno.petit", service="adonis", role="acces")
    body = api.ok(
        OPERATOR,
        "POST",
        f"{MAIRIE}/conventions/{MAIRIE_CONV}/subscriptions",
        {"service": "adonis"},
        201,
    )
    assert api.allowed(user="bruno.petit", service="adonis", role="acces")
    # Closing it today takes effect at once (R-TIME-1), and the past is kept (R-TIME-2).
    sub_id = body["subscription"]["id"]
    closed = api.ok(
        OPERATOR, "PATCH", f"{MAIRIE}/subscriptions/{sub_id}", {"closes_on": today.isoformat()}
    )
    assert closed["subscription"]["closes_on"] == today.isoformat()
    assert not api.allowed(user="bruno.petit", service="adonis", role="acces")
    assert api.allowed(user="bruno.petit", service="adonis", at=day(today, -11))


def test_closing_a_convention_closes_its_subscriptions_R_CON_2(api: Api, today: dt.date) -> None:
    assert api.allowed(user="bruno.petit", service="cdap")
    body = api.ok(
        OPERATOR, "PATCH", f"{MAIRIE}/conventions/{MAIRIE_CONV}", {"closes_on": day(today, 5)}
    )
    assert body["convention"]["closes_on"] == day(today, 5)
    contract = api.ok(OPERATOR, "GET", f"{MAIRIE}/contract")
    [conv] = contract["conventions"]
    by_service = {s["service"]: s["closes_on"] for s in conv["subscriptions"]}
    assert by_service["cdap"] == day(today, 5)  # followed the convention
    assert by_service["adonis"] == day(today, -10)  # already ended: history unchanged
    assert api.allowed(user="bruno.petit", service="cdap", at=day(today, 4))
    assert not api.allowed(user="bruno.petit", service="cdap", at=day(today, 5))


def test_contract_validation(api: Api, today: dt.date) -> None:
    api.error(
        OPERATOR,
        "POST",
        "/v1/organisations",
        409,
        "ORGANISATION_EXISTS",
        {"code": "mairie-montreuil", "name": "x"},
    )
    api.error(
        OPERATOR,
        "POST",
        "/v1/organisations",
        400,
        "RETROACTIVE_DATE",
        {"code": "neuve", "name": "x", "opens_on": day(today, -1)},
    )
    api.error(
        OPERATOR,
        "POST",
        f"{MAIRIE}/conventions",
        404,
        "UNKNOWN_CAF",
        {"caf": "999", "reference": "X"},
    )
    api.error(
        OPERATOR,
        "POST",
        f"{MAIRIE}/conventions",
        409,
        "CONVENTION_EXISTS",
        {"caf": "751", "reference": MAIRIE_CONV},
    )
    api.error(
        OPERATOR,
        "POST",
        f"{MAIRIE}/conventions",
        400,
        "INVALID_DATES",
        {"caf": "751", "reference": "X", "opens_on": day(today, 5), "closes_on": day(today, 5)},
    )
    subs = f"{MAIRIE}/conventions/{MAIRIE_CONV}/subscriptions"
    api.error(OPERATOR, "POST", subs, 400, "UNKNOWN_SERVICE", {"service": "nope"})
    # R-CON-1: one open subscription per service and convention.
    api.error(OPERATOR, "POST", subs, 409, "ALREADY_SUBSCRIBED", {"service": "cdap"})
    api.error(
        OPERATOR,
        "POST",
        f"{MAIRIE}/conventions/NOPE/subscriptions",
        404,
        "UNKNOWN_CONVENTION",
        {"service": "cdap"},
    )
    # R-CON-1: a subscription lies within its convention.
    api.ok(
        OPERATOR,
        "POST",
        f"{MAIRIE}/conventions",
        {"caf": "751", "reference": "CONV-751", "closes_on": day(today, 30)},
        201,
    )
    err = api.error(
        OPERATOR,
        "POST",
        f"{MAIRIE}/conventions/CONV-751/subscriptions",
        409,
        "OUTSIDE_CONVENTION",
        {"service": "cdap", "closes_on": day(today, 60)},
    )
    assert "R-CON-1" in err["message"]
    # Without a closing date, it closes with the convention.
    sub = api.ok(
        OPERATOR, "POST", f"{MAIRIE}/conventions/CONV-751/subscriptions", {"service": "cdap"}, 201
    )
    assert sub["subscription"]["closes_on"] == day(today, 30)
    # Nothing can be subscribed under a convention that has ended.
    api.ok(OPERATOR, "PATCH", f"{MAIRIE}/conventions/CONV-751", {"closes_on": today.isoformat()})
    api.error(
        OPERATOR,
        "POST",
        f"{MAIRIE}/conventions/CONV-751/subscriptions",
        409,
        "OUTSIDE_CONVENTION",
        {"service": "dgfip"},
    )
    # R-TIME-2: no retroactive closing, no edit of what has ended, no empty edit.
    api.error(
        OPERATOR,
        "PATCH",
        f"{MAIRIE}/conventions/{MAIRIE_CONV}",
        400,
        "RETROACTIVE_DATE",
        {"closes_on": day(today, -1)},
    )
    sub_id = sub["subscription"]["id"]
    api.error(
        OPERATOR,
        "PATCH",
        f"{MAIRIE}/subscriptions/{sub_id}",
        400,
        "RETROACTIVE_DATE",
        {"closes_on": day(today, -1)},
    )
    api.error(
        OPERATOR,
        "PATCH",
        f"{MAIRIE}/subscriptions/{sub_id}",
        409,
        "OUTSIDE_CONVENTION",
        {"closes_on": None},
    )
    api.error(OPERATOR, "PATCH", f"{MAIRIE}/subscriptions/{sub_id}", 400, "EMPTY_EDIT", {})
    api.error(
        OPERATOR,
        "PATCH",
        f"{MAIRIE}/subscriptions/999999",
        404,
        "UNKNOWN_SUBSCRIPTION",
        {"closes_on": today.isoformat()},
    )
    adonis = next(
        s["id"]
        for c in api.ok(OPERATOR, "GET", f"{MAIRIE}/contract")["conventions"]
        for s in c["subscriptions"]
        if s["service"] == "adonis"
    )
    api.error(
        OPERATOR,
        "PATCH",
        f"{MAIRIE}/subscriptions/{adonis}",
        409,
        "ALREADY_ENDED",
        {"closes_on": None},
    )


# -- Who may (R-CON-4, R-ADM-5) ------------------------------------------------------------


def test_partner_admin_reads_but_does_not_manage_the_contract_R_ADM_5(api: Api) -> None:
    contract = api.ok("alice.martin", "GET", f"{MAIRIE}/contract")
    [conv] = contract["conventions"]
    assert conv["reference"] == MAIRIE_CONV and conv["caf"] == "931"
    assert {s["service"]: s["open"] for s in conv["subscriptions"]} == {
        "cdap": True,
        "adonis": False,
    }
    assert [(a["login"], a["open"]) for a in contract["admins"]] == [("alice.martin", True)]
    start = api.revision()
    for method, path, body in (
        ("POST", f"{MAIRIE}/conventions", {"caf": "751", "reference": "X"}),
        ("POST", f"{MAIRIE}/conventions/{MAIRIE_CONV}/subscriptions", {"service": "dgfip"}),
        ("PATCH", f"{MAIRIE}/conventions/{MAIRIE_CONV}", {"closes_on": None}),
        ("POST", f"{MAIRIE}/admins", {"login": "chloe.roux"}),  # R-CON-4: operators only
        ("DELETE", f"{MAIRIE}/admins/alice.martin", None),
        ("POST", "/v1/organisations", {"code": "x", "name": "x"}),
    ):
        api.error("alice.martin", method, path, 403, "NOT_PERMITTED", body)
    assert api.revision() == start


def test_others_may_not_read_the_contract_R_ADM_5(api: Api) -> None:
    api.error("bruno.petit", "GET", f"{MAIRIE}/contract", 403, "NOT_PERMITTED")  # a manager
    api.error("chloe.roux", "GET", f"{MAIRIE}/contract", 403, "NOT_PERMITTED")  # a user
    api.error("karim.diallo", "GET", f"{MAIRIE}/contract", 403, "OTHER_ORGANISATION")


def test_without_a_valid_token_401(api: Api) -> None:
    api.error(None, "GET", f"{MAIRIE}/contract", 401, "UNAUTHENTICATED")
    api.error(None, "POST", "/v1/organisations", 401, "UNAUTHENTICATED", {"code": "x", "name": "x"})
    api.error("david.leroy", "GET", f"{MAIRIE}/contract", 401, "ACTOR_CLOSED")  # R-USR-4


# -- Partner admins (R-ADM-1) --------------------------------------------------------------


def test_third_admin_refused_R_ADM_1(api: Api) -> None:
    api.ok(OPERATOR, "POST", f"{MAIRIE}/admins", {"login": "chloe.roux"}, 201)
    start = api.revision()
    err = api.error(
        OPERATOR, "POST", f"{MAIRIE}/admins", 409, "TOO_MANY_ADMINS", {"login": "emma.garnier"}
    )
    assert "R-ADM-1" in err["message"]
    assert api.revision() == start  # nothing written
    contract = api.ok(OPERATOR, "GET", f"{MAIRIE}/contract")
    assert sorted(a["login"] for a in contract["admins"] if a["open"]) == [
        "alice.martin",
        "chloe.roux",
    ]
    # Ending a designation makes room (R-TIME-2: it is kept, closed).
    ended = api.ok(OPERATOR, "DELETE", f"{MAIRIE}/admins/chloe.roux")
    assert ended["admin"]["closes_on"] is not None
    api.ok(OPERATOR, "POST", f"{MAIRIE}/admins", {"login": "emma.garnier"}, 201)
    contract = api.ok(OPERATOR, "GET", f"{MAIRIE}/contract")
    assert [(a["login"], a["open"]) for a in contract["admins"]] == [
        ("alice.martin", True),
        ("chloe.roux", False),
        ("emma.garnier", True),
    ]


def test_a_closed_user_is_no_admin_R_ADM_1(api: Api, today: dt.date) -> None:
    api.ok(OPERATOR, "POST", f"{MAIRIE}/admins", {"login": "chloe.roux"}, 201)
    # alice closes her own account (R-USR-4); her designation was not ended.
    closing = {"closes_on": today.isoformat()}
    api.ok("alice.martin", "PATCH", f"{MAIRIE}/users/alice.martin", closing)
    api.ok(OPERATOR, "POST", f"{MAIRIE}/admins", {"login": "emma.garnier"}, 201)


def test_designation_refusals(api: Api) -> None:
    admins = f"{MAIRIE}/admins"
    api.error(OPERATOR, "POST", admins, 409, "ALREADY_ADMIN", {"login": "alice.martin"})
    api.error(OPERATOR, "POST", admins, 409, "USER_NOT_OPEN", {"login": "david.leroy"})
    api.error(OPERATOR, "POST", admins, 409, "USER_NOT_OPEN", {"login": "fabien.morel"})
    api.error(OPERATOR, "POST", admins, 404, "UNKNOWN_USER", {"login": "karim.diallo"})
    api.error(OPERATOR, "POST", admins, 400, "VALIDATION_ERROR", {})
    api.error(OPERATOR, "DELETE", f"{MAIRIE}/admins/chloe.roux", 404, "NOT_AN_ADMIN")


def test_designating_a_new_user_is_one_transaction(api: Api) -> None:
    new = {"login": "yann.neuf", "first_name": "Yann", "last_name": "Neuf", "email": "y@n.fr"}
    # asso-entraide has one admin (karim): the user is created and designated together.
    body = api.ok(
        OPERATOR, "POST", "/v1/organisations/asso-entraide/admins", {"new_user": new}, 201
    )
    assert body["created_user"]["login"] == "yann.neuf"
    user = api.ok("karim.diallo", "GET", "/v1/organisations/asso-entraide/users/yann.neuf")
    assert user["user"]["partner_admin"] is True
    # The new admin acts at once.
    api.ok("yann.neuf", "GET", "/v1/organisations/asso-entraide/contract")

    # mairie-montreuil then has two admins: a third is refused and the user is not created.
    api.ok(OPERATOR, "POST", f"{MAIRIE}/admins", {"login": "chloe.roux"}, 201)
    start = api.revision()
    other = {**new, "login": "zelie.neuve"}
    api.error(OPERATOR, "POST", f"{MAIRIE}/admins", 409, "TOO_MANY_ADMINS", {"new_user": other})
    assert api.revision() == start
    api.error("alice.martin", "GET", f"{MAIRIE}/users/zelie.neuve", 404, "UNKNOWN_USER")
    # A taken login fails the same way.
    api.error(
        OPERATOR,
        "POST",
        "/v1/organisations/sip-lyon/admins",
        409,
        "LOGIN_TAKEN",
        {"new_user": {**new, "login": "alice.martin"}},
    )


def test_ending_an_admin(api: Api, today: dt.date) -> None:
    path = f"{MAIRIE}/admins/alice.martin"
    api.error(OPERATOR, "DELETE", path, 400, "RETROACTIVE_DATE", {"closes_on": day(today, -1)})
    later = api.ok(OPERATOR, "DELETE", path, {"closes_on": day(today, 10)})
    assert later["admin"]["closes_on"] == day(today, 10)
    api.ok("alice.martin", "GET", f"{MAIRIE}/contract")  # still an admin until then
    now = api.ok(OPERATOR, "DELETE", path)  # empty body: today, at once (R-TIME-1)
    assert now["admin"]["closes_on"] == today.isoformat()
    api.error("alice.martin", "GET", f"{MAIRIE}/contract", 403, "NOT_PERMITTED")


def test_openapi_documents_the_routes(api: Api) -> None:
    paths = api.client.get("/v1/openapi.json").get_json()["paths"]
    assert set(paths["/v1/organisations/{org}/admins/{login}"]) == {"delete"}
    assert set(paths["/v1/organisations/{org}/subscriptions/{subscription_id}"]) == {"patch"}
    assert paths["/v1/organisations"]["post"]["security"] == [{"bearerAuth": []}]
