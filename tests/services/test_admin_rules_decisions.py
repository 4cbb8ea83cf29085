"""Administrative decisions (R-ADM-7) and authentication: the public admin check, its bad
questions, the token the administration API wants, and one 404 for an unknown organisation on
every read, through the HTTP administration API on the demo data (``pdp.services.demo``).

Each test names the rule it checks. Every refusal is checked to have written nothing: the
revision ``GET /healthz`` serves is unchanged and no audit event was emitted (one write = one
transaction, nothing half done). A 403 carries the engine's reason and the id of the logged
decision (R-ADM-7). The demo's actors and groups are recalled in ``support.admin_bodies``.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from pdp.core.config import Settings
from pdp.services.tokens import mint

from support.actors import Api
from support.admin_bodies import new_user
from support.constants import MAIRIE, SECRET

# -- Administrative decisions (R-ADM-7) and authentication -------------------------------------


def test_r_adm_7_public_admin_check(api: Api) -> None:
    before = api.revision()
    ccas, accueil = "group:mairie-montreuil/CCAS", "group:mairie-montreuil/CCAS-ACCUEIL"
    cases = [
        ("bruno.petit", "group.edit", accueil, "ALLOWED"),
        ("bruno.petit", "group.edit", ccas, "OUTSIDE_PERIMETER"),
        ("bruno.petit", "group.members.edit", ccas, "ALLOWED"),
        ("alice.martin", "group.edit", ccas, "ALLOWED"),
        ("chloe.roux", "group.edit", accueil, "NOT_PERMITTED"),
        ("bruno.petit", "group.create_top", "organisation:mairie-montreuil", "NOT_PERMITTED"),
        ("bruno.petit", "user.edit", "user:chloe.roux", "ALLOWED"),
        ("bruno.petit", "user.edit", "user:alice.martin", "TARGET_IS_PARTNER_ADMIN"),
        ("bruno.petit", "group.edit", "group:habitat-93/EB-PARC-PRIVE", "OTHER_ORGANISATION"),
        ("david.leroy", "group.edit", accueil, "ACTOR_CLOSED"),
        ("nobody.here", "group.edit", accueil, "UNKNOWN_ACTOR"),
        ("alice.martin", "group.edit", "group:mairie-montreuil/NOPE", "UNKNOWN_TARGET"),
        ("op.caf751", "contract.manage", "organisation:mairie-montreuil", "ALLOWED"),
        ("alice.martin", "contract.manage", "organisation:mairie-montreuil", "NOT_PERMITTED"),
    ]
    for actor, action, target, expected in cases:
        out = api.admin_check(actor, action, target)
        assert out["reason"]["code"] == expected, (actor, action, target)
        assert out["allowed"] is (expected == "ALLOWED")
        assert out["reason"]["message"]
        assert out["revision"] == before
        # Every answer is logged under its id (R-ADM-7).
        entry = next(e for e in api.log.entries if e["decision_id"] == out["decision_id"])
        assert (entry["user"], entry["action"], entry["target"], entry["reason"]) == (
            actor,
            action,
            target,
            expected,
        )
    assert len({e["decision_id"] for e in api.log.entries}) == len(cases)
    assert api.revision() == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"actor": "bruno.petit", "action": "group.fly", "target": "group:m/X"}, "UNKNOWN_ACTION"),
        ({"actor": "bruno.petit", "action": "group.edit", "target": "grp:x"}, "INVALID_TARGET"),
        (
            {"actor": "bruno.petit", "action": "group.edit", "target": "user:chloe.roux"},
            "ACTION_TARGET_MISMATCH",
        ),
        ({"actor": "bruno.petit", "action": "group.edit"}, "MISSING_FIELD"),
        (
            {"actor": "bruno.petit", "action": "group.edit", "target": "platform", "x": 1},
            "UNKNOWN_FIELD",
        ),
    ],
)
def test_r_adm_7_admin_check_bad_question_is_400(api: Api, body: dict[str, Any], code: str) -> None:
    before = len(api.log.entries)
    r = api.client.post("/v1/admin/check", json=body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["code"] == code
    assert len(api.log.entries) == before  # no decision was taken


def test_r_adm_7_admin_api_requires_a_valid_token(api: Api) -> None:
    write = ("POST", f"{MAIRIE}/users", new_user("zoe.durand"))
    api.refused(None, *write, status=401, code="UNAUTHENTICATED")
    api.refused(
        None,
        *write,
        headers={"Authorization": "Basic YWxpY2U6eA=="},
        status=401,
        code="UNAUTHENTICATED",
    )
    api.refused(
        None,
        *write,
        headers={"Authorization": "Bearer not-a-jwt"},
        status=401,
        code="INVALID_TOKEN",
    )
    forged = mint(Settings(jwt_secret="f" * 40), "alice.martin")
    api.refused(
        None,
        *write,
        headers={"Authorization": f"Bearer {forged}"},
        status=401,
        code="INVALID_TOKEN",
    )
    other_audience = mint(Settings(jwt_secret=SECRET, jwt_audience="other"), "alice.martin")
    api.refused(
        None,
        *write,
        headers={"Authorization": f"Bearer {other_audience}"},
        status=401,
        code="INVALID_TOKEN",
    )
    expired = mint(api.settings, "alice.martin", ttl=-60)
    api.refused(
        None,
        *write,
        headers={"Authorization": f"Bearer {expired}"},
        status=401,
        code="TOKEN_EXPIRED",
    )
    api.refused("nobody.here", *write, status=401, code="UNKNOWN_ACTOR")
    # Reads too.
    api.refused(None, "GET", f"{MAIRIE}/groups", status=401, code="UNAUTHENTICATED")
    api.refused("nobody.here", "GET", f"{MAIRIE}/groups", status=401, code="UNKNOWN_ACTOR")
    assert api.reason("zoe.durand", "cdap") == "UNKNOWN_USER"
    # The same request with a valid token goes through.
    api.write("alice.martin", *write, status=201)


@pytest.mark.parametrize("actor", ["op.caf751", "alice.martin"])
def test_an_unknown_organisation_is_404_on_every_read(api: Api, app: Flask, actor: str) -> None:
    """One behaviour everywhere: an organisation nobody knows answers 404 UNKNOWN_ORGANISATION
    on every route under /v1/organisations/<org>, for an operator and a partner admin alike
    (never 403 UNKNOWN_TARGET on some and 404 on others); a group unknown in a known
    organisation answers 404 UNKNOWN_GROUP."""
    fill = {"<org>": "nulle-part", "<login>": "bruno.petit", "<code>": "CCAS"}
    routes = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1/organisations/<org>") and "GET" in (rule.methods or ())
    ]
    assert len(routes) >= 10, routes
    for route in routes:
        path = route
        for name, value in fill.items():
            path = path.replace(name, value)
        api.refused(actor, "GET", path, status=404, code="UNKNOWN_ORGANISATION")
    for path in (f"{MAIRIE}/groups/NOPE", f"{MAIRIE}/groups/NOPE/roles"):
        api.refused("alice.martin", "GET", path, status=404, code="UNKNOWN_GROUP")
