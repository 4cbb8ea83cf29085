""" "Droits non utilisés": an organisation's users holding rights unused for N days (R-CNIL-3),
each with a "Clôturer" action that asks first, with what closing the user today will do (the
close-user confirmation page and its preview, fiche 3)."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, request, url_for
from werkzeug.wrappers import Response

from pdp.core.errors import PdpError
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.services import dormant
from pdp.services.admin import users
from pdp.services.admin.requests import UserEdit
from pdp.web.console.blueprint import bp
from pdp.web.console.common import actor, allowed, consequences, page
from pdp.web.container import services

DORMANT = "/organisations/<org>/droits-non-utilises"
CLOSE = "/organisations/<org>/utilisateurs/<login>/cloturer"


@bp.context_processor
def _menu() -> dict[str, Any]:
    """Whether the menu offers an organisation's "Droits non utilisés" (R-CNIL-5)."""
    if g.get("console_login") is None:
        return {"may_read_dormant": lambda org: False}
    return {"may_read_dormant": lambda org: allowed(Action.ACCESS_READ, f"organisation:{org}")}


@bp.get(DORMANT)
def dormant_rights(org: str) -> Response:
    """The users of ``org`` holding rights unused for ``?jours=N`` days (default 90); an
    invalid number is refused on the form (400), nothing listed."""
    raw = request.args.get("jours")
    try:
        days = dormant.parse_days(raw, blank=True)
    except PdpError as exc:
        services().admin.require(actor(), Action.ACCESS_READ, Target("organisation", org))
        return page("dormant.html", exc.status, org=org, report=None, days=raw, error=exc.message)
    found = dormant.report(services().admin, actor(), org, days)
    closable = {u.login: allowed(Action.USER_CLOSE, f"user:{u.login}") for u in found.users}
    return page("dormant.html", org=org, report=found, days=days, closable=closable, error=None)


@bp.get(CLOSE)
def dormant_close_confirm(org: str, login: str) -> Response:
    """Fiche 3 from the report: "Voulez-vous clôturer l'utilisateur … ?", closing today, with
    its preview (or the refusal it would meet)."""
    data = UserEdit(closes_on=services().admin.today())
    preview = consequences(lambda: users.edit_user(services().admin, actor(), org, login, data))
    return _confirmation(org, login, data, preview)


@bp.post(CLOSE)
def dormant_close(org: str, login: str) -> Response:
    """Close the user on the day confirmed (R-USR-4), then back to the report."""
    data = UserEdit.model_validate({"closes_on": request.form.get("closes_on") or None})
    if request.form.get("confirmer") != "oui" or data.closes_on is None:
        return redirect(url_for("console.dormant_close_confirm", org=org, login=login))
    try:
        users.edit_user(services().admin, actor(), org, login, data)
    except PdpError as exc:
        return _confirmation(org, login, data, exc, exc.status)
    flash(f"L'utilisateur {login} sera clôturé le {data.closes_on:%d/%m/%Y}.", "success")
    return redirect(url_for("console.dormant_rights", org=org))


def _confirmation(
    org: str, login: str, data: UserEdit, preview: object, status: int = 200
) -> Response:
    assert data.closes_on is not None
    return page(
        "user_close.html",
        status,
        org=org,
        login=login,
        data=data,
        sent=[("closes_on", data.closes_on.isoformat())],
        preview=preview,
        back=url_for("console.dormant_rights", org=org),
    )
