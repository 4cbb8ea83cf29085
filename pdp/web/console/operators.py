"""The Caf side (R-CON-4), for operators: "Organismes partenaires", registering an
organisation, its contract (conventions with Cafs, subscriptions to services, partner admins),
and the forms that change it. Each view parses the form, calls ``pdp.services.admin.contracts`` and
renders; a refusal is the service's French message on the form (kept filled), with the API's
status. What a page offers is what the admin check allows (R-ADM-7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, flash, g, redirect, request, url_for
from werkzeug.wrappers import Response

from pdp.core.errors import PdpError
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.services.admin import contracts, subscriptions
from pdp.services.admin.requests import (
    ConventionNew,
    DatesEdit,
    NewUser,
    OrganisationNew,
    SubscriptionNew,
    UserRef,
)
from pdp.services.admin.responses import ConventionItem, SubscriptionItem
from pdp.web.console.blueprint import bp
from pdp.web.console.common import actor, allowed, form_page, page
from pdp.web.console.forms import DATE_FIELDS, USER_FIELDS, Field, changes, parse, submitted
from pdp.web.container import services

ORGS = "/organismes"
ORG = f"{ORGS}/<org>"

# The operators' entry, "Organismes partenaires": listing and registering organisations are
# theirs only (policies/admin_policy.csv).
OPERATOR_ACTION = (Action.ORGANISATION_LIST, "platform")
CREATE_ACTION = (Action.ORGANISATION_CREATE, "platform")

ORGANISATION_FIELDS = (
    Field("code", "Code de l'organisme", required=True, hint="Lettres, chiffres, « - », « _ »."),
    Field("name", "Raison sociale", required=True),
    Field("kind", "Type d'organisme", hint="Par exemple : mairie, bailleur, association."),
    Field("opens_on", "Date d'ouverture", "date", hint="Par défaut : aujourd'hui."),
)
CONVENTION_FIELDS = (
    Field("caf", "Caf", required=True, hint="Le numéro de la Caf, par exemple 751."),
    Field("reference", "Référence de la convention", required=True),
    Field("opens_on", "Date de début", "date", hint="Par défaut : aujourd'hui."),
    Field("closes_on", "Date de fin", "date", hint="Facultative."),
)
SUBSCRIPTION_FIELDS = (
    Field("opens_on", "Date de début", "date", hint="Par défaut : aujourd'hui."),
    Field(
        "closes_on", "Date de fin", "date", hint="Facultative : par défaut, celle de la convention."
    ),
)
END_FIELDS = (Field("closes_on", "Date de fin", "date", required=True, hint="Jamais passée."),)
ADMIN_LOGIN = Field("existing_login", "Identifiant de l'utilisateur", required=True)

# Refusal codes of ``pdp.services.admin.contracts`` that concern one field of its form.
FIELD_OF_CODE = {
    "ORGANISATION_EXISTS": "code",
    "CONVENTION_EXISTS": "reference",
    "UNKNOWN_CAF": "caf",
    "UNKNOWN_SERVICE": "service",
    "ALREADY_SUBSCRIBED": "service",
    "ALREADY_STARTED": "opens_on",
    "ALREADY_ENDED": "closes_on",
    "INVALID_DATES": "closes_on",
    "LOGIN_TAKEN": "login",
}
EXISTING_USER_CODES = {"UNKNOWN_USER", "USER_NOT_OPEN", "ALREADY_ADMIN"}


@bp.context_processor
def _menu() -> dict[str, Any]:
    """Whether the menu offers "Organismes partenaires" (R-ADM-7)."""
    if g.get("console_login") is None:
        return {"menu_operator": False}
    return {"menu_operator": allowed(OPERATOR_ACTION[0], OPERATOR_ACTION[1])}


def _form(
    template: str, status: int = 200, error: PdpError | None = None, **context: Any
) -> Response:
    """A form page; a service refusal is shown in the summary and next to its field."""
    field = None
    if error is not None:
        field = FIELD_OF_CODE.get(error.code)
        if error.code in EXISTING_USER_CODES and request.form.get("source") == "existant":
            field = ADMIN_LOGIN.name
    return form_page(template, status, error, field, **context)


def _back(org: str, message: str) -> Response:
    flash(message, "success")
    return redirect(url_for("console.organisation_contract", org=org))


# -- Organisations -----------------------------------------------------------------------------


@bp.get(ORGS)
def organisations() -> Response:
    """The list "Organismes partenaires": the registered organisations (operators)."""
    rows = contracts.list_organisations(services().admin, actor()).organisations
    return page("organisations.html", rows=rows, may_create=allowed(*CREATE_ACTION))


@bp.get(f"{ORGS}/nouveau")
def organisation_new() -> Response:
    """The form "Enregistrer un organisme partenaire"."""
    services().admin.require(actor(), CREATE_ACTION[0], Target("platform"))
    return _form("organisation_form.html", fields=ORGANISATION_FIELDS, values={})


@bp.post(f"{ORGS}/nouveau")
def organisation_create() -> Response:
    """Register the organisation (R-CON-4)."""
    data, errors = parse(OrganisationNew, submitted(request.form, ORGANISATION_FIELDS))
    context: dict[str, Any] = {"fields": ORGANISATION_FIELDS}
    if data is None:
        return _form("organisation_form.html", 400, errors=errors, **context)
    try:
        contracts.create_organisation(services().admin, actor(), data)
    except PdpError as exc:
        return _form("organisation_form.html", error=exc, **context)
    return _back(data.code, f"L'organisme {data.code} est enregistré. Ajoutez-lui une convention.")


@bp.get(ORG)
def organisation_contract(org: str) -> Response:
    """The organisation's contract: conventions, subscriptions, partner admins (R-CON-4; read
    only for the organisation's partner admins, R-ADM-5)."""
    found = contracts.contract(services().admin, actor(), org)
    target = f"organisation:{org}"
    labels = {name: s.label for name, s in services().admin.catalogue.services.items()}
    return page(
        "organisation_contract.html",
        org=org,
        organisation=found.organisation,
        conventions=found.conventions,
        admins=found.admins,
        labels=labels,
        may_manage=allowed(Action.CONTRACT_MANAGE, target),
        may_designate=allowed(Action.ADMINS_DESIGNATE, target),
    )


# -- Conventions -------------------------------------------------------------------------------


@bp.get(f"{ORG}/conventions/nouvelle")
def convention_new(org: str) -> Response:
    """The form "Ajouter une convention"."""
    services().admin.require(actor(), Action.CONTRACT_MANAGE, Target("organisation", org))
    return _form("operator_convention_form.html", org=org, fields=CONVENTION_FIELDS, values={})


@bp.post(f"{ORG}/conventions/nouvelle")
def convention_create(org: str) -> Response:
    """Register a convention with one Caf (R-CON-1)."""
    data, errors = parse(ConventionNew, submitted(request.form, CONVENTION_FIELDS))
    context: dict[str, Any] = {"org": org, "fields": CONVENTION_FIELDS}
    if data is None:
        return _form("operator_convention_form.html", 400, errors=errors, **context)
    try:
        contracts.add_convention(services().admin, actor(), org, data)
    except PdpError as exc:
        return _form("operator_convention_form.html", error=exc, **context)
    return _back(org, f"La convention {data.reference} avec la Caf {data.caf} est enregistrée.")


def _convention(org: str, reference: str) -> ConventionItem:
    """The convention ``reference`` of the contract (404 if the contract has none)."""
    for conv in contracts.contract(services().admin, actor(), org).conventions:
        if conv.reference == reference:
            return conv
    abort(404)


def _dates(row: ConventionItem | SubscriptionItem) -> dict[str, str | None]:
    """A convention's or subscription's days, as the dates form shows and compares them."""
    return {"opens_on": row.opens_on, "closes_on": row.closes_on}


def _dates_page(status: int = 200, error: PdpError | None = None, **context: Any) -> Response:
    return _form("operator_dates_form.html", status, error, **context)


@bp.get(f"{ORG}/conventions/<reference>/modifier")
def convention_edit_form(org: str, reference: str) -> Response:
    """The form "Modifier les dates de la convention"."""
    services().admin.require(actor(), Action.CONTRACT_MANAGE, Target("organisation", org))
    return _dates_page(
        org=org,
        title=f"Modifier les dates de la convention {reference}",
        fields=DATE_FIELDS,
        values=_dates(_convention(org, reference)),
    )


@bp.post(f"{ORG}/conventions/<reference>/modifier")
def convention_edit(org: str, reference: str) -> Response:
    """Change the convention's dates; closing it closes its subscriptions too (R-CON-2)."""
    return _save_dates(
        org,
        f"Modifier les dates de la convention {reference}",
        _dates(_convention(org, reference)),
        lambda data: contracts.edit_convention(services().admin, actor(), org, reference, data),
        f"Les dates de la convention {reference} sont enregistrées.",
    )


def _save_dates(
    org: str,
    title: str,
    current: dict[str, str | None],
    save: Callable[[DatesEdit], object],
    done: str,
) -> Response:
    """The dates form posted: parse what changed, ``save`` it through the service, and go
    back to the contract with ``done``, or show the form again with the refusal."""
    wanted = changes(request.form, DATE_FIELDS, current)
    context: dict[str, Any] = {"org": org, "title": title, "fields": DATE_FIELDS}
    if not wanted:
        # An empty edit would close today: the form asks for a change.
        return _dates_page(400, errors={"closes_on": "Saisissez une nouvelle date."}, **context)
    data, errors = parse(DatesEdit, wanted)
    if data is None:
        return _dates_page(400, errors=errors, **context)
    try:
        save(data)
    except PdpError as exc:
        return _dates_page(error=exc, **context)
    return _back(org, done)


# -- Subscriptions -----------------------------------------------------------------------------


def _services() -> list[tuple[str, str]]:
    """The catalogue's services: (name, label)."""
    return [(name, s.label) for name, s in sorted(services().admin.catalogue.services.items())]


@bp.get(f"{ORG}/conventions/<reference>/bulletins/nouveau")
def subscription_new(org: str, reference: str) -> Response:
    """The form "Ajouter un bulletin d'adhésion" (one service under the convention)."""
    services().admin.require(actor(), Action.CONTRACT_MANAGE, Target("organisation", org))
    return _form(
        "operator_subscription_form.html",
        org=org,
        reference=reference,
        services=_services(),
        fields=SUBSCRIPTION_FIELDS,
        values={},
    )


@bp.post(f"{ORG}/conventions/<reference>/bulletins/nouveau")
def subscription_create(org: str, reference: str) -> Response:
    """Subscribe the organisation to a service under the convention (R-CON-1, R-CON-2)."""
    fields = (Field("service", "Service", required=True), *SUBSCRIPTION_FIELDS)
    data, errors = parse(SubscriptionNew, submitted(request.form, fields))
    context: dict[str, Any] = {
        "org": org,
        "reference": reference,
        "services": _services(),
        "fields": SUBSCRIPTION_FIELDS,
    }
    if data is None:
        return _form("operator_subscription_form.html", 400, errors=errors, **context)
    try:
        subscriptions.add_subscription(services().admin, actor(), org, reference, data)
    except PdpError as exc:
        return _form("operator_subscription_form.html", error=exc, **context)
    return _back(org, f"Le service {data.service} est souscrit sous la convention {reference}.")


def _number(subscription: str) -> int:
    """The subscription's number in the URL (any other path: 404; the URL is matched as text
    so that the sign-in guard runs first for every console path)."""
    if not (subscription.isascii() and subscription.isdigit()) or len(subscription) > 18:
        abort(404)
    return int(subscription)


def _subscription(org: str, subscription: int) -> SubscriptionItem:
    """The subscription of the contract (404 if the contract has none with this number)."""
    for conv in contracts.contract(services().admin, actor(), org).conventions:
        for sub in conv.subscriptions:
            if sub.id == subscription:
                return sub
    abort(404)


@bp.get(f"{ORG}/bulletins/<subscription>/modifier")
def subscription_edit_form(org: str, subscription: str) -> Response:
    """The form "Modifier les dates du bulletin d'adhésion"."""
    number = _number(subscription)
    services().admin.require(actor(), Action.CONTRACT_MANAGE, Target("organisation", org))
    return _dates_page(
        org=org,
        title=f"Modifier les dates du bulletin d'adhésion {number}",
        fields=DATE_FIELDS,
        values=_dates(_subscription(org, number)),
    )


@bp.post(f"{ORG}/bulletins/<subscription>/modifier")
def subscription_edit(org: str, subscription: str) -> Response:
    """Change the subscription's dates (R-CON-1, R-CON-2, R-TIME-2)."""
    number = _number(subscription)
    return _save_dates(
        org,
        f"Modifier les dates du bulletin d'adhésion {number}",
        _dates(_subscription(org, number)),
        lambda data: subscriptions.edit_subscription(services().admin, actor(), org, number, data),
        f"Les dates du bulletin d'adhésion {number} sont enregistrées.",
    )


# -- Partner admins ----------------------------------------------------------------------------


def _admin_form(status: int = 200, error: PdpError | None = None, **context: Any) -> Response:
    return _form(
        "operator_admin_form.html",
        status,
        error,
        login_field=ADMIN_LOGIN,
        user_fields=USER_FIELDS,
        source=request.form.get("source", ""),
        **context,
    )


@bp.get(f"{ORG}/administrateurs/nouveau")
def admin_new(org: str) -> Response:
    """The form "Désigner un administrateur partenaire": an existing user or a new one."""
    services().admin.require(actor(), Action.ADMINS_DESIGNATE, Target("organisation", org))
    return _admin_form(org=org, values={})


@bp.post(f"{ORG}/administrateurs/nouveau")
def admin_designate(org: str) -> Response:
    """Designate a partner admin from today (R-CON-4); at most two (R-ADM-1)."""
    source = request.form.get("source")
    ref: dict[str, Any]
    if source == "existant":
        values = submitted(request.form, (ADMIN_LOGIN,))
        ref = {"login": values.get(ADMIN_LOGIN.name, "")}
        data, errors = parse(UserRef, ref)
        errors = {ADMIN_LOGIN.name: next(iter(errors.values()))} if errors else {}
    else:
        user, errors = parse(NewUser, submitted(request.form, USER_FIELDS))
        data = UserRef(new_user=user) if user is not None else None
    if data is None:
        return _admin_form(400, org=org, errors=errors)
    try:
        done = contracts.designate_admin(services().admin, actor(), org, data)
    except PdpError as exc:
        return _admin_form(error=exc, org=org)
    login = done.admin.login
    if done.created_user is not None:
        return _back(org, f"L'utilisateur {login} est créé et désigné administrateur partenaire.")
    return _back(org, f"{login} est désigné(e) administrateur partenaire.")


@bp.get(f"{ORG}/administrateurs/<login>/fin")
def admin_end_form(org: str, login: str) -> Response:
    """The form "Mettre fin à la désignation" on a chosen day."""
    services().admin.require(actor(), Action.ADMINS_DESIGNATE, Target("organisation", org))
    if all(a.login != login for a in contracts.contract(services().admin, actor(), org).admins):
        abort(404)
    return _dates_page(
        org=org,
        title=f"Mettre fin à la désignation de {login}",
        fields=END_FIELDS,
        values={},
    )


@bp.post(f"{ORG}/administrateurs/<login>/fin")
def admin_end(org: str, login: str) -> Response:
    """End the designation on the chosen day (R-TIME-2: never in the past)."""
    context: dict[str, Any] = {
        "org": org,
        "title": f"Mettre fin à la désignation de {login}",
        "fields": END_FIELDS,
    }
    values = submitted(request.form, END_FIELDS)
    if not values:
        return _dates_page(400, errors={"closes_on": "Ce champ est obligatoire."}, **context)
    data, errors = parse(DatesEdit, values)
    if data is None:
        return _dates_page(400, errors=errors, **context)
    try:
        contracts.end_admin(services().admin, actor(), org, login, data)
    except PdpError as exc:
        return _dates_page(error=exc, **context)
    when = f"le {data.closes_on:%d/%m/%Y}" if data.closes_on is not None else "aujourd'hui"
    return _back(org, f"La désignation de {login} prend fin {when}.")


@bp.post(f"{ORG}/administrateurs/<login>/fin-aujourd-hui")
def admin_end_today(org: str, login: str) -> Response:
    """End the designation today (nothing is deleted, R-TIME-2)."""
    contracts.end_admin(services().admin, actor(), org, login, DatesEdit())
    return _back(
        org, f"La désignation de {login} comme administrateur partenaire prend fin aujourd'hui."
    )
