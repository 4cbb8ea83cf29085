"""For auditors: the decision log ("Journal des décisions") and the audit trail of a user, a
group or an organisation ("Historique des modifications"). Each view first has
``pdp.services.auditing.AuditorQueries.reader`` authorise the actor (the engine's ``log.read``:
operators
everywhere, partner admins their own organisation; anyone else gets 403 before any filter is
judged) and say which organisation they read and may choose; then it parses the filters, calls
the query and renders one page, paginated with the query's cursor."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import g, request, url_for
from werkzeug.wrappers import Response

from pdp.core.clock import PARIS
from pdp.services.audit_pages import AuditPage, HistoryPage
from pdp.web.console.blueprint import bp
from pdp.web.console.common import actor, page
from pdp.web.console.forms import Field
from pdp.web.container import services

JOURNAL = "/journal"
PAGE_SIZE = 25

KINDS = {
    "check": "Contrôle d'accès",
    "permissions": "Liste des droits",
    "service_users": "Utilisateurs d'un service",
    "admin": "Action d'administration",
}
RESULTS = {"oui": True, "non": False}
TARGET_KINDS = {"user": "Un utilisateur", "group": "Un groupe", "": "Tout l'organisme"}
DATE_FILTERS = (
    Field("from", "Du", "date", hint="Inclus."),
    Field("to", "Au", "date", hint="Inclus."),
)
_DATE_ERROR = "Date invalide : format attendu AAAA-MM-JJ."


@bp.context_processor
def _menu() -> dict[str, Any]:
    """Whether the menu offers the decision log and the audit trail (R-ADM-7)."""
    login = g.get("console_login")
    if login is None:
        return {"menu_audit": False}
    return {"menu_audit": services().auditing.may_read(login)}


def _args(*names: str) -> dict[str, Any]:
    """The non-empty query parameters among ``names``, stripped."""
    out: dict[str, Any] = {}
    for name in names:
        value = request.args.get(name, "").strip()
        if value:
            out[name] = value
    return out


def _day(text: str | None, errors: dict[str, str], name: str) -> dt.date | None:
    if text is None:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        errors[name] = _DATE_ERROR
        return None
    if not dt.date(1900, 1, 1) <= day <= dt.date(9998, 12, 31):  # a day after it must exist
        errors[name] = _DATE_ERROR
        return None
    return day


def _midnight(day: dt.date) -> dt.datetime:
    """The start of ``day`` in Paris (the days the console shows are Paris days)."""
    return dt.datetime.combine(day, dt.time(), PARIS)


def _local(iso: str) -> str:
    """An ISO 8601 UTC moment as Paris local time, "24/11/2026 10:22:52"."""
    moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.astimezone(PARIS).strftime("%d/%m/%Y %H:%M:%S")


def _reader(organisation: str | None, *, own_organisation: bool = False) -> dict[str, Any]:
    """Authorise the signed-in user to read the log (403 otherwise) and the context it gives:
    whether they choose the organisation, and among which (code, name)."""
    found = services().auditing.reader(actor(), organisation, own_organisation=own_organisation)
    return {
        "org": found.organisation,
        "may_choose_organisation": found.may_choose,
        "organisations": [(o.code, o.name) for o in found.organisations],
    }


@bp.get(f"{JOURNAL}/decisions")
def audit_decisions() -> Response:
    """The decision log, newest first: filters user, service, result, kind, period, and the
    allocataire number of a family's file (who opened it, which tab, under which right)."""
    filters = _args(
        "user", "service", "allowed", "kind", "organisation", "allocataire", "from", "to"
    )
    reader = _reader(filters.get("organisation"))
    errors: dict[str, str] = {}
    start = _day(filters.get("from"), errors, "from")
    last = _day(filters.get("to"), errors, "to")
    if filters.get("allowed") not in (None, *RESULTS):
        errors["allowed"] = "Valeur invalide."
    if filters.get("kind") not in (None, *KINDS):
        errors["kind"] = "Valeur invalide."
    number = filters.get("allocataire")
    if number is not None and not (number.isascii() and number.isdigit() and len(number) <= 13):
        errors["allocataire"] = "Un numéro d'allocataire : des chiffres (13 au plus)."
    catalogue = services().admin.catalogue.services
    names = sorted(catalogue)
    if filters.get("service") not in (None, *names):
        errors["service"] = "Service inconnu."
    context: dict[str, Any] = {
        "filters": filters,
        "date_fields": DATE_FILTERS,
        "kinds": KINDS,
        "services": [(s, catalogue[s].label) for s in names],
        "may_choose_organisation": reader["may_choose_organisation"],
        "organisations": reader["organisations"],
    }
    if errors:
        return page("audit_decisions.html", 400, errors=errors, rows=[], **context)
    found = services().auditing.decisions(
        actor(),
        organisation=filters.get("organisation"),
        user=filters.get("user"),
        service=filters.get("service"),
        allowed=RESULTS.get(filters.get("allowed", "")),
        kind=filters.get("kind"),
        start=_midnight(start) if start is not None else None,
        end=_midnight(last + dt.timedelta(days=1)) if last is not None else None,
        limit=PAGE_SIZE,
        cursor=request.args.get("cursor") or None,
        allocataire=number,
    )
    rows = [{**d, "when": _local(d["at_time"])} for d in found.decisions]
    cursor = found.next_cursor
    return page(
        "audit_decisions.html",
        errors={},
        rows=rows,
        next_url=url_for("console.audit_decisions", **filters, cursor=cursor) if cursor else None,
        first_url=url_for("console.audit_decisions", **filters)
        if request.args.get("cursor")
        else None,
        **context,
    )


@bp.get(f"{JOURNAL}/historique")
def audit_history() -> Response:
    """The audit trail of a user or a group (or of the whole organisation), newest first:
    actor, action, target, before/after, revision, time."""
    filters = _args("organisation", "type", "id")
    # A partner admin reads their own organisation, whatever the URL names.
    context: dict[str, Any] = {
        "filters": filters,
        "target_kinds": TARGET_KINDS,
        **_reader(filters.get("organisation"), own_organisation=True),
    }
    org = context["org"]
    kind = filters.get("type", "")
    ident = filters.get("id")
    errors: dict[str, str] = {}
    if kind not in TARGET_KINDS:
        errors["type"] = "Valeur invalide."
    elif kind and ident is None and request.args:
        errors["id"] = "Saisissez l'identifiant de l'utilisateur ou le code du groupe."
    if org is None and request.args:
        errors["organisation"] = "Choisissez un organisme."
    if errors or org is None or (kind and ident is None):
        # Without an organisation (operators' first visit), only the form.
        return page(
            "audit_history.html", 400 if errors else 200, errors=errors, rows=None, **context
        )
    cursor = request.args.get("cursor") or None
    if kind and ident is not None:
        target = f"user:{ident}" if kind == "user" else f"group:{org}/{ident}"
        found: AuditPage | HistoryPage = services().auditing.history(
            actor(), org, target, limit=PAGE_SIZE, cursor=cursor
        )
    else:
        target = None
        found = services().auditing.audit(actor(), org, limit=PAGE_SIZE, cursor=cursor)
    rows = [{**r, "when": _local(r["at"])} for r in found.records]
    following = found.next_cursor
    return page(
        "audit_history.html",
        errors={},
        rows=rows,
        target=target,
        next_url=url_for("console.audit_history", **filters, cursor=following)
        if following
        else None,
        first_url=url_for("console.audit_history", **filters) if cursor else None,
        **context,
    )
