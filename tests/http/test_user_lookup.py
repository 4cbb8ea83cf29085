"""``GET /v1/users/<login>``: a user found by login alone (logins are unique in the portal,
R-USR-1), for operators across organisations and for the user's own organisation's partner
admins and managers (directory.read, R-USR-6), on every driver."""

from __future__ import annotations

import pytest

from pdp.records.audit_trail import AuditReader
from pdp.services.admin.responses import UserDetail
from pdp.web.container import services

from support.actors import Api
from support.constants import MANAGER, OPERATOR, PARTNER_ADMIN, SECRET, MakeApp


@pytest.fixture
def api(make_app: MakeApp) -> Api:
    app, log = make_app(jwt_secret=SECRET)
    return Api(app.test_client(), AuditReader(services(app).db), log)


def test_an_operator_finds_any_partners_user_R_USR_1(api: Api) -> None:
    found = api.read(OPERATOR, "/v1/users/gilles.bernard")
    UserDetail.model_validate(found)
    assert (found["user"]["login"], found["user"]["organisation"]) == (
        "gilles.bernard",
        "habitat-93",
    )
    # The same detail as the organisation's own route answers.
    assert found == api.read(OPERATOR, "/v1/organisations/habitat-93/users/gilles.bernard")


@pytest.mark.parametrize("who", [PARTNER_ADMIN, MANAGER])
def test_a_partner_finds_the_users_of_their_organisation_R_USR_6(api: Api, who: str) -> None:
    found = api.read(who, f"/v1/users/{PARTNER_ADMIN}")
    assert found["user"]["organisation"] == "mairie-montreuil"
    api.refused(who, "GET", "/v1/users/gilles.bernard", status=403, code="OTHER_ORGANISATION")


def test_a_login_that_names_no_partners_user_is_404(api: Api) -> None:
    api.refused(OPERATOR, "GET", "/v1/users/nobody", status=404, code="UNKNOWN_USER")
    api.refused(OPERATOR, "GET", f"/v1/users/{OPERATOR}", status=404, code="UNKNOWN_USER")
    assert api.call(None, "GET", "/v1/users/gilles.bernard").status_code == 401
