"""The service functions the console renders without deciding anything itself: the list of
organisations (operators only, ``organisation.list``), the display flags the service computes
(a membership still ``editable``, a designation still ``current``), the demo accounts with their
role, and the journal's pages, which authorise before they judge a filter (a plain user gets 403,
never 400). On the demo data, over every backend the ``backend`` fixture provides."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pdp.core.errors import Forbidden
from pdp.engine.rules import ADMIN_MESSAGES, AdminReason
from pdp.services.admin import contracts, users
from pdp.services.admin.requests import DatesEdit, MembershipEdit
from pdp.services.admin.service import AdminService
from pdp.web.container import services

from support.actors import Api
from support.constants import MAIRIE_CODE as MAIRIE  # the code here, not the path
from support.constants import SECRET, MakeApp


@pytest.fixture
def app(make_app: MakeApp) -> Flask:
    """The app over a private copy of the demo, with the tests' JWT secret."""
    return make_app(jwt_secret=SECRET)[0]


def service(app: Flask) -> AdminService:
    found: AdminService = services(app).admin
    return found


def refused(exc: pytest.ExceptionInfo[Forbidden]) -> AdminReason:
    """The engine's reason of a 403, checked to carry its French message."""
    reason = AdminReason(exc.value.code)
    assert exc.value.status == 403
    assert exc.value.message == ADMIN_MESSAGES[reason]
    return reason


# -- contracts.list_organisations ---------------------------------------------------------------


def test_an_operator_lists_every_organisation(app: Flask) -> None:
    found = contracts.list_organisations(service(app), "op.caf751").model_dump()["organisations"]
    codes = [o["code"] for o in found]
    assert codes == sorted(codes)
    assert MAIRIE in codes
    mairie = next(o for o in found if o["code"] == MAIRIE)
    assert mairie["name"] == "Mairie de Montreuil - CCAS"
    assert mairie["open"] is True
    assert set(mairie) >= {"code", "name", "kind", "opens_on", "closes_on", "open"}


@pytest.mark.parametrize("login", ["alice.martin", "bruno.petit", "chloe.roux"])
def test_only_operators_list_the_organisations(app: Flask, login: str) -> None:
    with pytest.raises(Forbidden) as exc:
        contracts.list_organisations(service(app), login)
    assert refused(exc) is AdminReason.NOT_PERMITTED


def test_the_api_lists_the_organisations_for_operators_only(app: Flask) -> None:
    api = Api(app.test_client())
    before = api.revision()
    body = api.ok("op.caf751", "GET", "/v1/organisations")
    assert MAIRIE in [o["code"] for o in body["organisations"]]
    assert api.revision() == before  # a read writes nothing
    err = api.error("alice.martin", "GET", "/v1/organisations", 403, "NOT_PERMITTED")
    assert err["message"] == ADMIN_MESSAGES[AdminReason.NOT_PERMITTED]
    api.error(None, "GET", "/v1/organisations", 401, "UNAUTHENTICATED")


# -- The display flags --------------------------------------------------------------------------


def memberships_of(svc: AdminService, login: str) -> list[dict[str, Any]]:
    """``login``'s memberships, read by mairie-montreuil's partner admin, as the API answers
    them (dates as text)."""
    detail = users.user_detail(svc, "alice.martin", MAIRIE, login)
    found: list[dict[str, Any]] = detail.model_dump(mode="json")["user"]["memberships"]
    return found


def test_a_membership_ending_today_is_no_longer_editable(app: Flask) -> None:
    svc = service(app)
    memberships = memberships_of(svc, "chloe.roux")
    current = [m for m in memberships if m["closes_on"] is None]
    assert current and all(m["editable"] for m in current)
    group = current[0]["group"]
    users.edit_membership(svc, "alice.martin", MAIRIE, "chloe.roux", group, MembershipEdit())
    today = svc.today().isoformat()
    after = memberships_of(svc, "chloe.roux")
    ended = [m for m in after if m["group"] == group]
    assert [(m["closes_on"], m["open"], m["editable"]) for m in ended] == [(today, False, False)]
    assert all(m["editable"] for m in after if m["closes_on"] is None)


def test_a_membership_ending_later_stays_editable(app: Flask) -> None:
    svc = service(app)
    memberships = memberships_of(svc, "chloe.roux")
    group = next(m["group"] for m in memberships if m["closes_on"] is None)
    tomorrow = svc.today() + dt.timedelta(days=1)
    data = MembershipEdit(closes_on=tomorrow)
    users.edit_membership(svc, "alice.martin", MAIRIE, "chloe.roux", group, data)
    after = memberships_of(svc, "chloe.roux")
    mine = [m for m in after if m["group"] == group]
    assert [(m["closes_on"], m["open"], m["editable"]) for m in mine] == [
        (tomorrow.isoformat(), True, True)
    ]


def test_an_ended_designation_is_not_current(app: Flask) -> None:
    svc = service(app)
    admins = contracts.contract(svc, "op.caf751", MAIRIE).model_dump()["admins"]
    assert [(a["login"], a["open"], a["current"]) for a in admins] == [("alice.martin", True, True)]
    contracts.end_admin(svc, "op.caf751", MAIRIE, "alice.martin", DatesEdit())
    admins = contracts.contract(svc, "op.caf751", MAIRIE).model_dump()["admins"]
    assert [(a["login"], a["open"], a["current"]) for a in admins] == [
        ("alice.martin", False, False)
    ]


def test_the_api_answers_the_flags(app: Flask) -> None:
    api = Api(app.test_client())
    contract = api.ok("op.caf751", "GET", f"/v1/organisations/{MAIRIE}/contract")
    assert all(isinstance(a["current"], bool) for a in contract["admins"])
    detail = api.ok("alice.martin", "GET", f"/v1/organisations/{MAIRIE}/users/chloe.roux")
    assert all(isinstance(m["editable"], bool) for m in detail["user"]["memberships"])


# -- users.demo_accounts -----------------------------------------------------------------------


def test_the_demo_accounts_are_the_open_users_with_their_role(app: Flask) -> None:
    found = users.demo_accounts(service(app))
    by_login = {a["login"]: a for a in found}
    assert by_login["op.caf751"] == {
        "login": "op.caf751",
        "organisation": "",
        "role": "operator",
        "role_label": "opérateur Caf",
    }
    assert by_login["alice.martin"]["role_label"] == "administrateur partenaire"
    assert by_login["bruno.petit"]["role_label"] == "responsable habilitations"
    assert by_login["chloe.roux"]["role_label"] == "utilisateur"
    assert "david.leroy" not in by_login  # closed
    assert "fabien.morel" not in by_login  # not yet open
    assert found == sorted(found, key=lambda a: (a["organisation"], a["login"]))


# -- The console authorises before it judges a filter ------------------------------------------


def signed_in(app: Flask, login: str) -> FlaskClient:
    client = app.test_client()
    page = client.get("/console/connexion").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    answer = client.post("/console/connexion", data={"login": login, "csrf_token": token.group(1)})
    assert answer.status_code == 302
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/console/journal/decisions?to=not-a-date",
        "/console/journal/decisions?kind=nope&allowed=peut-etre",
        "/console/journal/decisions",
        "/console/journal/historique",
        "/console/journal/historique?type=nope",
        "/console/journal/historique?type=user",
    ],
)
def test_a_plain_user_gets_403_not_400_on_the_journal(app: Flask, path: str) -> None:
    answer = signed_in(app, "chloe.roux").get(path)
    assert answer.status_code == 403
    assert ADMIN_MESSAGES[AdminReason.NOT_PERMITTED] in answer.text.replace("&#39;", "'")


def test_an_auditor_still_gets_400_for_a_bad_filter(app: Flask) -> None:
    operator = signed_in(app, "op.caf751")
    answer = operator.get("/console/journal/decisions?to=not-a-date")
    assert answer.status_code == 400
    assert "Date invalide" in answer.text
    assert "Mairie de Montreuil - CCAS" in answer.text  # the operator's choice of organisation
    admin = signed_in(app, "alice.martin")
    answer = admin.get("/console/journal/decisions?to=not-a-date")
    assert answer.status_code == 400
    assert 'name="organisation"' not in answer.text  # their own, no choice
    assert admin.get("/console/journal/historique").status_code == 200


def test_the_organisations_page_is_the_operators(app: Flask) -> None:
    answer = signed_in(app, "op.caf751").get("/console/organismes")
    assert answer.status_code == 200
    assert MAIRIE in answer.text
    assert "Enregistrer un organisme partenaire" in answer.text
    assert signed_in(app, "alice.martin").get("/console/organismes").status_code == 403
