"""System groups follow their subscriptions (R-GRP-3), managed by a partner admin (R-ADM-3), on
every driver: an operator subscribes a social landlord to Espace Bailleur and its groups appear,
one per housing type with its role; closing the subscription closes them, subscribing again
reopens them; partners attach users and nothing else."""

from __future__ import annotations

import datetime as dt

import pytest

from pdp.records.audit_trail import AuditReader
from pdp.web.container import services

from support.actors import Api
from support.constants import OPERATOR, SECRET, MakeApp

ORG = "/v1/organisations/habitat-bondy"
CONV = "CONV-HB-931"
GROUPS = ("EB-PARC-CONVENTIONNE", "EB-PARC-PRIVE")


@pytest.fixture
def api(make_app: MakeApp) -> Api:
    app, log = make_app(jwt_secret=SECRET)
    return Api(app.test_client(), AuditReader(services(app).db), log)


def day(today: dt.date, n: int) -> str:
    return (today + dt.timedelta(days=n)).isoformat()


def landlord(api: Api, *, admin: bool = True) -> None:
    """A new social landlord with a convention, and its partner admin (when asked)."""
    api.write(
        OPERATOR,
        "POST",
        "/v1/organisations",
        {"code": "habitat-bondy", "name": "Habitat Bondy", "kind": "bailleur"},
        201,
    )
    api.write(OPERATOR, "POST", f"{ORG}/conventions", {"caf": "931", "reference": CONV}, 201)
    if admin:
        new_user = {
            "login": "lise.marchand",
            "first_name": "Lise",
            "last_name": "Marchand",
            "email": "lise.marchand@habitat-bondy.fr",
        }
        api.write(OPERATOR, "POST", f"{ORG}/admins", {"new_user": new_user}, 201)


def subscribe(api: Api, **dates: str) -> dict[str, object]:
    path = f"{ORG}/conventions/{CONV}/subscriptions"
    return api.write(OPERATOR, "POST", path, {"service": "espace_bailleur", **dates}, 201)


def system_groups(api: Api) -> dict[str, dict[str, object]]:
    listed = api.get("lise.marchand", f"{ORG}/groups")["groups"]
    return {g["code"]: g for g in listed if g["system"]}


def test_subscribing_creates_the_system_groups_R_GRP_3(api: Api, today: dt.date) -> None:
    landlord(api)
    subscribe(api)
    found = system_groups(api)
    assert sorted(found) == list(GROUPS)
    for code in GROUPS:
        assert (found[code]["opens_on"], found[code]["closes_on"]) == (today.isoformat(), None)
        assert (found[code]["editable"], found[code]["closable"]) == (False, False)
        detail = api.get("lise.marchand", f"{ORG}/groups/{code}")["group"]
        assert detail["manager"]["login"] == "lise.marchand"  # R-ADM-3
    roles = api.get("lise.marchand", f"{ORG}/groups/EB-PARC-PRIVE/roles")["roles"]
    assert [(r["service"], r["role"]) for r in roles] == [("espace_bailleur", "parc_prive")]
    # Partners attach their users (fiche 4), and the role is then theirs.
    api.write(
        "lise.marchand",
        "POST",
        f"{ORG}/users/lise.marchand/memberships",
        {"group": "EB-PARC-PRIVE"},
        201,
    )
    assert api.allowed("lise.marchand", "espace_bailleur", "parc_prive")
    assert not api.allowed("lise.marchand", "espace_bailleur", "parc_conventionne")


def test_no_system_group_without_a_partner_admin_to_manage_it_R_ADM_3(api: Api) -> None:
    landlord(api, admin=False)
    api.refused(
        OPERATOR,
        "POST",
        f"{ORG}/conventions/{CONV}/subscriptions",
        {"service": "espace_bailleur"},
        status=409,
        code="PARTNER_ADMIN_REQUIRED",
    )
    # A service without system groups needs none.
    api.write(OPERATOR, "POST", f"{ORG}/conventions/{CONV}/subscriptions", {"service": "cdap"}, 201)


def test_closing_the_subscription_closes_them_and_subscribing_again_reopens_R_GRP_3(
    api: Api, today: dt.date
) -> None:
    landlord(api)
    sub = subscribe(api)["subscription"]
    api.write(
        "lise.marchand",
        "POST",
        f"{ORG}/users/lise.marchand/memberships",
        {"group": "EB-PARC-PRIVE"},
        201,
    )
    api.write(OPERATOR, "PATCH", f"{ORG}/subscriptions/{sub['id']}", {"closes_on": day(today, 5)})
    found = system_groups(api)
    assert {code: g["closes_on"] for code, g in found.items()} == dict.fromkeys(
        GROUPS, day(today, 5)
    )
    detail = api.get("lise.marchand", f"{ORG}/users/lise.marchand")["user"]
    (membership,) = [m for m in detail["memberships"] if m["group"] == "EB-PARC-PRIVE"]
    assert membership["closes_on"] == day(today, 5)  # ends with the group (R-GRP-2)
    # Closed today: the groups grant nothing from today.
    api.write(
        OPERATOR, "PATCH", f"{ORG}/subscriptions/{sub['id']}", {"closes_on": today.isoformat()}
    )
    assert not api.allowed("lise.marchand", "espace_bailleur", "parc_prive")
    # Subscribing again reopens them from that day; members are attached again by the partner.
    subscribe(api, opens_on=day(today, 2))
    found = system_groups(api)
    assert {code: g["closes_on"] for code, g in found.items()} == dict.fromkeys(GROUPS, None)
    detail = api.get("lise.marchand", f"{ORG}/groups/EB-PARC-PRIVE")["group"]
    assert detail["manager"]["login"] == "lise.marchand"


def test_partners_cannot_edit_close_or_re_role_them_R_GRP_3(api: Api, today: dt.date) -> None:
    landlord(api)
    subscribe(api)
    group = f"{ORG}/groups/EB-PARC-PRIVE"
    api.refused("lise.marchand", "PATCH", group, {"label": "x"}, status=409, code="SYSTEM_GROUP")
    api.refused("lise.marchand", "POST", f"{group}/close", status=409, code="SYSTEM_GROUP")
    api.refused(
        "lise.marchand",
        "DELETE",
        f"{group}/roles/espace_bailleur/parc_prive",
        status=409,
        code="SYSTEM_GROUP",
    )


def test_management_passes_to_the_other_partner_admin_R_ADM_3(api: Api, today: dt.date) -> None:
    landlord(api)
    subscribe(api)
    api.refused(
        OPERATOR,
        "DELETE",
        f"{ORG}/admins/lise.marchand",
        status=409,
        code="SYSTEM_GROUPS_NEED_ADMIN",
    )
    other = {
        "login": "yann.perez",
        "first_name": "Yann",
        "last_name": "Perez",
        "email": "yann.perez@habitat-bondy.fr",
    }
    api.write(OPERATOR, "POST", f"{ORG}/admins", {"new_user": other}, 201)
    api.write(OPERATOR, "DELETE", f"{ORG}/admins/lise.marchand")
    for code in GROUPS:
        assert (
            api.get("yann.perez", f"{ORG}/groups/{code}")["group"]["manager"]["login"]
            == "yann.perez"
        )


def other_admin(api: Api) -> None:
    other = {
        "login": "yann.perez",
        "first_name": "Yann",
        "last_name": "Perez",
        "email": "yann.perez@habitat-bondy.fr",
    }
    api.write(OPERATOR, "POST", f"{ORG}/admins", {"new_user": other}, 201)


def managers(api: Api) -> set[str]:
    return {
        api.get("yann.perez", f"{ORG}/groups/{code}")["group"]["manager"]["login"]
        for code in GROUPS
    }


def test_an_admin_leaving_before_the_groups_close_does_not_manage_them_R_ADM_3(
    api: Api, today: dt.date
) -> None:
    # Lise's account closes in ten days: the groups, open for good, would be left with a closed
    # manager from then. Without another partner admin, the subscription is refused.
    landlord(api)
    api.write("lise.marchand", "PATCH", f"{ORG}/users/lise.marchand", {"closes_on": day(today, 10)})
    path = f"{ORG}/conventions/{CONV}/subscriptions"
    api.refused(
        OPERATOR,
        "POST",
        path,
        {"service": "espace_bailleur"},
        status=409,
        code="PARTNER_ADMIN_REQUIRED",
    )
    # With one who stays, the groups are theirs, though Lise was designated first.
    other_admin(api)
    subscribe(api)
    assert managers(api) == {"yann.perez"}


def test_groups_that_last_longer_pass_to_an_admin_who_lasts_R_ADM_3(
    api: Api, today: dt.date
) -> None:
    # Subscribed for five days, the groups close before Lise does (in ten): hers.
    landlord(api)
    api.write("lise.marchand", "PATCH", f"{ORG}/users/lise.marchand", {"closes_on": day(today, 10)})
    subscribe(api, closes_on=day(today, 5))
    assert {
        api.get("lise.marchand", f"{ORG}/groups/{code}")["group"]["manager"]["login"]
        for code in GROUPS
    } == {"lise.marchand"}
    # A second subscription makes them open for good: Lise cannot follow them, and without
    # another partner admin the subscription is refused; with one, the groups are handed over.
    path = f"{ORG}/conventions/{CONV}/subscriptions"
    body = {"service": "espace_bailleur", "opens_on": day(today, 5)}
    api.refused(OPERATOR, "POST", path, body, status=409, code="PARTNER_ADMIN_REQUIRED")
    other_admin(api)
    api.write(OPERATOR, "POST", path, body, 201)
    assert managers(api) == {"yann.perez"}


def test_a_subscription_is_addressed_by_its_convention_and_service_R_CON_2(
    api: Api, today: dt.date
) -> None:
    landlord(api)
    sub = subscribe(api)["subscription"]
    path = f"{ORG}/conventions/{CONV}/subscriptions/espace_bailleur"
    out = api.write(OPERATOR, "PATCH", path, {"closes_on": day(today, 30)})
    assert (out["subscription"]["id"], out["subscription"]["closes_on"]) == (
        sub["id"],
        day(today, 30),
    )
    # One more to come after it: which one is meant is ambiguous.
    subscribe(api, opens_on=day(today, 40))
    err = api.refused(
        OPERATOR,
        "PATCH",
        path,
        {"closes_on": day(today, 20)},
        status=409,
        code="AMBIGUOUS_SUBSCRIPTION",
    )
    assert len(err["error"]["details"]["subscriptions"]) == 2
    api.refused(
        OPERATOR,
        "PATCH",
        f"{ORG}/conventions/{CONV}/subscriptions/cdap",
        {"closes_on": day(today, 20)},
        status=404,
        code="UNKNOWN_SUBSCRIPTION",
    )
