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
from admin_api import SECRET, Api
from flask import Flask

from pdp.records.decision_log import MemoryLog
from pdp.services.admin.responses import (
    AdminWritten,
    ContractOut,
    ConventionWritten,
    OrganisationWritten,
    SubscriptionWritten,
)

OPERATOR = "op.caf751"
MAIRIE = "/v1/organisations/mairie-montreuil"
MAIRIE_CONV = "CONV-mairie-montreuil-931"


@pytest.fixture
def api(make_app: Callable[..., tuple[Flask, MemoryLog]]) -> Api:
    """The app over the demo data, with HS256 tokens signed by SECRET."""
    app, _ = make_app(jwt_secret=SECRET)
    return Api(app.test_client())


def day(today: dt.date, n: int) -> str:
    """ISO day ``n`` days from ``today``."""
    return (today + dt.timedelta(days=n)).isoformat()


# -- Operators register the contract (R-CON-4) ---------------------------------------------


def test_operator_registers_organisation_convention_subscription_R_CON_4(
    api: Api, today: dt.date
) -> None:
    start = api.revision()
    org = api.ok(
        "POST",
        "/v1/organisations",
        OPERATOR,
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
        "POST", f"{base}/conventions", OPERATOR, {"caf": "931", "reference": "CONV-B"}, 201
    )
    ConventionWritten.model_validate(conv)
    assert conv["convention"]["caf"] == "931"
    sub = api.ok(
        "POST", f"{base}/conventions/CONV-B/subscriptions", OPERATOR, {"service": "cdap"}, 201
    )
    SubscriptionWritten.model_validate(sub)
    assert sub["subscription"]["service"] == "cdap"
    assert sub["subscription"]["opens_on"] == today.isoformat()
    # The next decision sees the write: the revision served is the write's.
    assert sub["revision"] == start + 3 == api.revision()

    admin = api.ok(
        "POST",
        f"{base}/admins",
        OPERATOR,
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

    contract = api.ok("GET", f"{base}/contract", "zoe.bondy")  # R-ADM-5: admins read it
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
        "POST",
        f"{MAIRIE}/conventions/{MAIRIE_CONV}/subscriptions",
        OPERATOR,
        {"service": "adonis"},
        201,
    )
    assert api.allowed(user="bruno.petit", service="adonis", role="acces")
    # Closing it today takes effect at once (R-TIME-1), and the past is kept (R-TIME-2).
    sub_id = body["subscription"]["id"]
    closed = api.ok(
        "PATCH", f"{MAIRIE}/subscriptions/{sub_id}", OPERATOR, {"closes_on": today.isoformat()}
    )
    assert closed["subscription"]["closes_on"] == today.isoformat()
    assert not api.allowed(user="bruno.petit", service="adonis", role="acces")
    assert api.allowed(user="bruno.petit", service="adonis", at=day(today, -11))


def test_closing_a_convention_closes_its_subscriptions_R_CON_2(api: Api, today: dt.date) -> None:
    assert api.allowed(user="bruno.petit", service="cdap")
    body = api.ok(
        "PATCH", f"{MAIRIE}/conventions/{MAIRIE_CONV}", OPERATOR, {"closes_on": day(today, 5)}
    )
    assert body["convention"]["closes_on"] == day(today, 5)
    contract = api.ok("GET", f"{MAIRIE}/contract", OPERATOR)
    [conv] = contract["conventions"]
    by_service = {s["service"]: s["closes_on"] for s in conv["subscriptions"]}
    assert by_service["cdap"] == day(today, 5)  # followed the convention
    assert by_service["adonis"] == day(today, -10)  # already ended: history unchanged
    assert api.allowed(user="bruno.petit", service="cdap", at=day(today, 4))
    assert not api.allowed(user="bruno.petit", service="cdap", at=day(today, 5))


def test_contract_validation(api: Api, today: dt.date) -> None:
    api.error(
        "POST",
        "/v1/organisations",
        OPERATOR,
        409,
        "ORGANISATION_EXISTS",
        {"code": "mairie-montreuil", "name": "x"},
    )
    api.error(
        "POST",
        "/v1/organisations",
        OPERATOR,
        400,
        "RETROACTIVE_DATE",
        {"code": "neuve", "name": "x", "opens_on": day(today, -1)},
    )
    api.error(
        "POST",
        f"{MAIRIE}/conventions",
        OPERATOR,
        404,
        "UNKNOWN_CAF",
        {"caf": "999", "reference": "X"},
    )
    api.error(
        "POST",
        f"{MAIRIE}/conventions",
        OPERATOR,
        409,
        "CONVENTION_EXISTS",
        {"caf": "751", "reference": MAIRIE_CONV},
    )
    api.error(
        "POST",
        f"{MAIRIE}/conventions",
        OPERATOR,
        400,
        "INVALID_DATES",
        {"caf": "751", "reference": "X", "opens_on": day(today, 5), "closes_on": day(today, 5)},
    )
    subs = f"{MAIRIE}/conventions/{MAIRIE_CONV}/subscriptions"
    api.error("POST", subs, OPERATOR, 400, "UNKNOWN_SERVICE", {"service": "nope"})
    # R-CON-1: one open subscription per service and convention.
    api.error("POST", subs, OPERATOR, 409, "ALREADY_SUBSCRIBED", {"service": "cdap"})
    api.error(
        "POST",
        f"{MAIRIE}/conventions/NOPE/subscriptions",
        OPERATOR,
        404,
        "UNKNOWN_CONVENTION",
        {"service": "cdap"},
    )
    # R-CON-1: a subscription lies within its convention.
    api.ok(
        "POST",
        f"{MAIRIE}/conventions",
        OPERATOR,
        {"caf": "751", "reference": "CONV-751", "closes_on": day(today, 30)},
        201,
    )
    err = api.error(
        "POST",
        f"{MAIRIE}/conventions/CONV-751/subscriptions",
        OPERATOR,
        409,
        "OUTSIDE_CONVENTION",
        {"service": "cdap", "closes_on": day(today, 60)},
    )
    assert "R-CON-1" in err["message"]
    # Without a closing date, it closes with the convention.
    sub = api.ok(
        "POST",
        f"{MAIRIE}/conventions/CONV-751/subscriptions",
        OPERATOR,
        {"service": "cdap"},
        201,
    )
    assert sub["subscription"]["closes_on"] == day(today, 30)
    # Nothing can be subscribed under a convention that has ended.
    api.ok("PATCH", f"{MAIRIE}/conventions/CONV-751", OPERATOR, {"closes_on": today.isoformat()})
    api.error(
        "POST",
        f"{MAIRIE}/conventions/CONV-751/subscriptions",
        OPERATOR,
        409,
        "OUTSIDE_CONVENTION",
        {"service": "dgfip"},
    )
    # R-TIME-2: no retroactive closing, no edit of what has ended, no empty edit.
    api.error(
        "PATCH",
        f"{MAIRIE}/conventions/{MAIRIE_CONV}",
        OPERATOR,
        400,
        "RETROACTIVE_DATE",
        {"closes_on": day(today, -1)},
    )
    sub_id = sub["subscription"]["id"]
    api.error(
        "PATCH",
        f"{MAIRIE}/subscriptions/{sub_id}",
        OPERATOR,
        400,
        "RETROACTIVE_DATE",
        {"closes_on": day(today, -1)},
    )
    api.error(
        "PATCH",
        f"{MAIRIE}/subscriptions/{sub_id}",
        OPERATOR,
        409,
        "OUTSIDE_CONVENTION",
        {"closes_on": None},
    )
    api.error("PATCH", f"{MAIRIE}/subscriptions/{sub_id}", OPERATOR, 400, "EMPTY_EDIT", {})
    api.error(
        "PATCH",
        f"{MAIRIE}/subscriptions/999999",
        OPERATOR,
        404,
        "UNKNOWN_SUBSCRIPTION",
        {"closes_on": today.isoformat()},
    )
    adonis = next(
        s["id"]
        for c in api.ok("GET", f"{MAIRIE}/contract", OPERATOR)["conventions"]
        for s in c["subscriptions"]
        if s["service"] == "adonis"
    )
    api.error(
        "PATCH",
        f"{MAIRIE}/subscriptions/{adonis}",
        OPERATOR,
        409,
        "ALREADY_ENDED",
        {"closes_on": None},
    )


# -- Who may (R-CON-4, R-ADM-5) ------------------------------------------------------------


def test_partner_admin_reads_but_does_not_manage_the_contract_R_ADM_5(api: Api) -> None:
    contract = api.ok("GET", f"{MAIRIE}/contract", "alice.martin")
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
        api.error(method, path, "alice.martin", 403, "NOT_PERMITTED", body)
    assert api.revision() == start


def test_others_may_not_read_the_contract_R_ADM_5(api: Api) -> None:
    api.error("GET", f"{MAIRIE}/contract", "bruno.petit", 403, "NOT_PERMITTED")  # a manager
    api.error("GET", f"{MAIRIE}/contract", "chloe.roux", 403, "NOT_PERMITTED")  # a user
    api.error("GET", f"{MAIRIE}/contract", "karim.diallo", 403, "OTHER_ORGANISATION")


def test_without_a_valid_token_401(api: Api) -> None:
    api.error("GET", f"{MAIRIE}/contract", None, 401, "UNAUTHENTICATED")
    api.error("POST", "/v1/organisations", None, 401, "UNAUTHENTICATED", {"code": "x", "name": "x"})
    api.error("GET", f"{MAIRIE}/contract", "david.leroy", 401, "ACTOR_CLOSED")  # R-USR-4


# -- Partner admins (R-ADM-1) --------------------------------------------------------------


def test_third_admin_refused_R_ADM_1(api: Api) -> None:
    api.ok("POST", f"{MAIRIE}/admins", OPERATOR, {"login": "chloe.roux"}, 201)
    start = api.revision()
    err = api.error(
        "POST", f"{MAIRIE}/admins", OPERATOR, 409, "TOO_MANY_ADMINS", {"login": "emma.garnier"}
    )
    assert "R-ADM-1" in err["message"]
    assert api.revision() == start  # nothing written
    contract = api.ok("GET", f"{MAIRIE}/contract", OPERATOR)
    assert sorted(a["login"] for a in contract["admins"] if a["open"]) == [
        "alice.martin",
        "chloe.roux",
    ]
    # Ending a designation makes room (R-TIME-2: it is kept, closed).
    ended = api.ok("DELETE", f"{MAIRIE}/admins/chloe.roux", OPERATOR)
    assert ended["admin"]["closes_on"] is not None
    api.ok("POST", f"{MAIRIE}/admins", OPERATOR, {"login": "emma.garnier"}, 201)
    contract = api.ok("GET", f"{MAIRIE}/contract", OPERATOR)
    assert [(a["login"], a["open"]) for a in contract["admins"]] == [
        ("alice.martin", True),
        ("chloe.roux", False),
        ("emma.garnier", True),
    ]


def test_a_closed_user_is_no_admin_R_ADM_1(api: Api, today: dt.date) -> None:
    api.ok("POST", f"{MAIRIE}/admins", OPERATOR, {"login": "chloe.roux"}, 201)
    # alice closes her own account (R-USR-4); her designation was not ended.
    closing = {"closes_on": today.isoformat()}
    api.ok("PATCH", f"{MAIRIE}/users/alice.martin", "alice.martin", closing)
    api.ok("POST", f"{MAIRIE}/admins", OPERATOR, {"login": "emma.garnier"}, 201)


def test_designation_refusals(api: Api) -> None:
    admins = f"{MAIRIE}/admins"
    api.error("POST", admins, OPERATOR, 409, "ALREADY_ADMIN", {"login": "alice.martin"})
    api.error("POST", admins, OPERATOR, 409, "USER_NOT_OPEN", {"login": "david.leroy"})
    api.error("POST", admins, OPERATOR, 409, "USER_NOT_OPEN", {"login": "fabien.morel"})
    api.error("POST", admins, OPERATOR, 404, "UNKNOWN_USER", {"login": "karim.diallo"})
    api.error("POST", admins, OPERATOR, 400, "VALIDATION_ERROR", {})
    api.error("DELETE", f"{MAIRIE}/admins/chloe.roux", OPERATOR, 404, "NOT_AN_ADMIN")


def test_designating_a_new_user_is_one_transaction(api: Api) -> None:
    new = {"login": "yann.neuf", "first_name": "Yann", "last_name": "Neuf", "email": "y@n.fr"}
    # asso-entraide has one admin (karim): the user is created and designated together.
    body = api.ok(
        "POST", "/v1/organisations/asso-entraide/admins", OPERATOR, {"new_user": new}, 201
    )
    assert body["created_user"]["login"] == "yann.neuf"
    user = api.ok("GET", "/v1/organisations/asso-entraide/users/yann.neuf", "karim.diallo")
    assert user["user"]["partner_admin"] is True
    # The new admin acts at once.
    api.ok("GET", "/v1/organisations/asso-entraide/contract", "yann.neuf")

    # mairie-montreuil then has two admins: a third is refused and the user is not created.
    api.ok("POST", f"{MAIRIE}/admins", OPERATOR, {"login": "chloe.roux"}, 201)
    start = api.revision()
    other = {**new, "login": "zelie.neuve"}
    api.error("POST", f"{MAIRIE}/admins", OPERATOR, 409, "TOO_MANY_ADMINS", {"new_user": other})
    assert api.revision() == start
    api.error("GET", f"{MAIRIE}/users/zelie.neuve", "alice.martin", 404, "UNKNOWN_USER")
    # A taken login fails the same way.
    api.error(
        "POST",
        "/v1/organisations/sip-lyon/admins",
        OPERATOR,
        409,
        "LOGIN_TAKEN",
        {"new_user": {**new, "login": "alice.martin"}},
    )


def test_ending_an_admin(api: Api, today: dt.date) -> None:
    path = f"{MAIRIE}/admins/alice.martin"
    api.error("DELETE", path, OPERATOR, 400, "RETROACTIVE_DATE", {"closes_on": day(today, -1)})
    later = api.ok("DELETE", path, OPERATOR, {"closes_on": day(today, 10)})
    assert later["admin"]["closes_on"] == day(today, 10)
    api.ok("GET", f"{MAIRIE}/contract", "alice.martin")  # still an admin until then
    now = api.ok("DELETE", path, OPERATOR)  # empty body: today, at once (R-TIME-1)
    assert now["admin"]["closes_on"] == today.isoformat()
    api.error("GET", f"{MAIRIE}/contract", "alice.martin", 403, "NOT_PERMITTED")


def test_openapi_documents_the_routes(api: Api) -> None:
    paths = api.client.get("/v1/openapi.json").get_json()["paths"]
    assert set(paths["/v1/organisations/{org}/admins/{login}"]) == {"delete"}
    assert set(paths["/v1/organisations/{org}/subscriptions/{subscription_id}"]) == {"patch"}
    assert paths["/v1/organisations"]["post"]["security"] == [{"bearerAuth": []}]
