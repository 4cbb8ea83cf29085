"""Fiches 7 to 16, "Mes groupes": the groups of the organisation, create a group or a
sub-group with its manager, a group's detail, edit or close it, its roles ("Habilitations du
groupe") and its manager ("responsable d'habilitations"). Each view parses the form, calls
``pdp.services.admin.groups`` and renders; a refusal is the service's French message on the form
(kept
filled), with the API's status. Buttons and links follow the admin check (R-ADM-7)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response

from pdp.core.errors import PdpError
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.services.admin import contracts, groups
from pdp.services.admin.requests import GroupEdit, GroupNew, ManagerSet, NewUser
from pdp.services.admin.responses import (
    ConventionItem,
    GroupAndManagerEdited,
    GroupItem,
    UserOut,
)
from pdp.web.console.blueprint import bp
from pdp.web.console.common import actor, allowed, consequences, page
from pdp.web.console.forms import LOGIN_HINT, Field, changes, parse, submitted
from pdp.web.console.listing import GROUPS_PAGE, page_number, tree_order
from pdp.web.container import services

GROUPS = "/organisations/<org>/groupes"
NEW_MANAGER = "__nouveau__"  # the manager picker's "Créer l'utilisateur" choice

# Refusal codes of the service that concern one field of the group forms (linked from the
# error summary only when the form shows that field: ``#parent`` is on the sub-group form only,
# ``#convention`` on the top-level one).
FIELD_OF_CODE = {
    "GROUP_CODE_TAKEN": "code",
    "LOGIN_TAKEN": "new_login",
    "MANAGER_NOT_OPEN": "manager",
    "MANAGER_CHANGED": "manager",
    "ALREADY_MANAGER": "manager",
    "RETROACTIVE_DATE": "opens_on",
    "GROUP_STARTED": "opens_on",
    "INVALID_DATES": "closes_on",
    "UNKNOWN_CONVENTION": "convention",
    "CONVENTION_CLOSED": "convention",
    "MISSING_FIELD": "convention",
    "SUBGROUP_CONVENTION": "convention",
    "GROUP_NOT_OPEN": "parent",
    "UNKNOWN_GROUP": "parent",
}

GROUP_FIELDS = (
    Field("code", "Code du groupe", required=True, hint="Unique dans l'organisme ; sans espace."),
    Field("label", "Libellé du groupe", required=True),
    Field("opens_on", "Date d'ouverture", "date", hint="Par défaut : aujourd'hui."),
    Field("closes_on", "Date de clôture", "date", hint="Facultative ; jamais dans le passé."),
)
EDIT_FIELDS = (
    Field("label", "Libellé du groupe", required=True),
    Field(
        "opens_on",
        "Date d'ouverture",
        "date",
        hint="Seule l'ouverture d'un groupe à venir peut changer.",
    ),
    Field(
        "closes_on", "Date de clôture", "date", hint="Une date saisie clôture le groupe ce jour-là."
    ),
)
NEW_USER_FIELDS = (
    Field("new_login", "Identifiant", hint=LOGIN_HINT),
    Field("new_last_name", "Nom"),
    Field("new_first_name", "Prénom"),
    Field("new_email", "Adresse électronique", "email"),
)
MANAGER_FIELDS = frozenset({"manager", *(f.name for f in NEW_USER_FIELDS)})
TOP_FORM = frozenset({"convention", *(f.name for f in GROUP_FIELDS), *MANAGER_FIELDS})
SUB_FORM = frozenset({"parent", *(f.name for f in GROUP_FIELDS), *MANAGER_FIELDS})


def group_target(org: str, code: str) -> str:
    return f"group:{org}/{code}"


def _form(
    template: str,
    present: frozenset[str],
    status: int = 200,
    error: PdpError | None = None,
    **context: Any,
) -> Response:
    """A form page; a service refusal is shown in the summary and next to its field. The
    summary links only to fields ``present`` on the form: another field's message is shown
    in the summary without a link."""
    errors: dict[str, str] = {}
    loose: list[str] = []
    for name, message in context.pop("errors", {}).items():
        if name in present:
            errors[name] = message
        else:
            loose.append(message)
    message = None
    if error is not None:
        status = error.status
        name = FIELD_OF_CODE.get(error.code)
        if name is not None and name in present:
            errors.setdefault(name, error.message)
        message = error.message
    elif loose:
        message = " ".join(loose)
    return page(
        template,
        status,
        values=context.pop("values", request.form),
        errors=errors,
        error=message,
        **context,
    )


def _back(org: str, message: str) -> Response:
    flash(message, "success")
    return redirect(url_for("console.groups_list", org=org))


def _managers(org: str, code: str | None = None) -> list[UserOut]:
    """The manager picker's users: those the service says may be named (R-ADM-3)."""
    return groups.eligible_managers(services().admin, actor(), org, code).users


def _conventions(org: str) -> list[ConventionItem]:
    """The organisation's open conventions (a top-level group names one, R-GRP-1)."""
    if not allowed(Action.CONTRACT_READ, f"organisation:{org}"):
        return []
    found = contracts.contract(services().admin, actor(), org).conventions
    return [c for c in found if c.open]


def _parents(org: str, required: bool = False) -> list[GroupItem]:
    """The groups the signed-in user may create a sub-group under, in tree order (the service
    decides: R-GRP-2, R-GRP-3, R-ADM-5, R-ADM-7); ``required``: none is the service's
    refusal."""
    found = groups.possible_parents(services().admin, actor(), org, required=required).groups
    return [g for g, _ in tree_order(found)]


def _manager_ref(
    form: Mapping[str, str], current: str | None = None
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The manager picker as a ``UserRef``/``ManagerSet`` body: an existing login, or the
    "Créer l'utilisateur" fields; None when the choice is unchanged (``current``)."""
    choice = form.get("manager", "").strip()
    if choice == NEW_MANAGER:
        values = {k.removeprefix("new_"): v for k, v in submitted(form, NEW_USER_FIELDS).items()}
        data, errors = parse(NewUser, values)
        if data is None:
            return None, {f"new_{k}": v for k, v in errors.items()}
        return {"new_user": data.model_dump(exclude_none=True)}, {}
    if not choice:
        return None, {"manager": "Choisissez le responsable d'habilitations."}
    if choice == current:
        return None, {}
    return {"login": choice}, {}


# -- fiches 8, 15: the list and a group's detail -------------------------------------------------


@bp.get(GROUPS)
def groups_list(org: str) -> Response:
    """Fiche 8: "Groupes utilisateurs", in tree order, with their "Autres actions"; those
    whose code or label contains ``recherche``; ``GROUPS_PAGE`` rows a page, so that the
    largest organisation's page stays as quick as a small one's."""
    search = (request.args.get("recherche") or "").strip() or None
    listing = tree_order(groups.list_groups(services().admin, actor(), org, q=search).groups)
    pages = max(1, -(-len(listing) // GROUPS_PAGE))
    number = min(page_number(request.args.get("page")), pages)
    shown = listing[(number - 1) * GROUPS_PAGE : number * GROUPS_PAGE]
    parents = {g.code for g in _parents(org)}
    rows = []
    for g, depth in shown:
        target = group_target(org, g.code)
        rows.append(
            {
                **g.model_dump(mode="json"),
                "depth": depth,
                "editable": g.editable and allowed(Action.GROUP_EDIT, target),
                "closable": g.closable and allowed(Action.GROUP_CLOSE, target),
                "sub": g.code in parents,
            }
        )
    return page(
        "groups.html",
        org=org,
        rows=rows,
        search=search,
        total=len(listing),
        number=number,
        pages=pages,
        may_create=allowed(Action.GROUP_CREATE_TOP, f"organisation:{org}"),
        may_create_sub=bool(parents),
    )


@bp.get(f"{GROUPS}/<code>")
def group_view(org: str, code: str) -> Response:
    """Fiches 8 and 15: "Visualiser un groupe utilisateurs" (manager, roles, members,
    sub-groups)."""
    detail = groups.group_detail(services().admin, actor(), org, code).group
    labels = {name: s.label for name, s in services().admin.catalogue.services.items()}
    return page(
        "group_detail.html",
        org=org,
        group=detail,
        labels=labels,
        editable=detail.editable and allowed(Action.GROUP_EDIT, group_target(org, code)),
    )


# -- fiche 7: create a group or a sub-group -------------------------------------------------------


def _new_context(org: str, top: bool, required: bool = False) -> dict[str, Any]:
    return {
        "org": org,
        "top": top,
        "fields": GROUP_FIELDS,
        "new_fields": NEW_USER_FIELDS,
        "managers": _managers(org),
        "conventions": _conventions(org) if top else [],
        "parents": [] if top else _parents(org, required),
        "new_manager": NEW_MANAGER,
    }


@bp.get(f"{GROUPS}/nouveau")
def group_new(org: str) -> Response:
    """Fiche 7: "Créer un groupe d'utilisateurs" (top level: partner admins)."""
    services().admin.require(actor(), Action.GROUP_CREATE_TOP, Target("organisation", org))
    context = _new_context(org, top=True)
    values = {"convention": context["conventions"][0].reference} if context["conventions"] else {}
    return _form("group_form.html", TOP_FORM, values=values, **context)


@bp.get(f"{GROUPS}/sous-groupe/nouveau")
def subgroup_new(org: str) -> Response:
    """ "Créer un sous-groupe": the parent chosen among the groups the user may create under
    (none: the service's refusal, with the engine's reason)."""
    context = _new_context(org, top=False, required=True)
    values = {"parent": request.args.get("parent", "")}
    return _form("group_form.html", SUB_FORM, values=values, **context)


def _create(org: str, top: bool) -> Response:
    values: dict[str, Any] = submitted(request.form, GROUP_FIELDS)
    name = "convention" if top else "parent"
    if request.form.get(name, "").strip():
        values[name] = request.form[name].strip()
    manager, errors = _manager_ref(request.form)
    context = _new_context(org, top)
    present = TOP_FORM if top else SUB_FORM
    if manager is None:
        return _form("group_form.html", present, 400, errors=errors, **context)
    data, errors = parse(GroupNew, {**values, "manager": manager})
    if data is None:
        return _form("group_form.html", present, 400, errors=errors, **context)
    try:
        groups.create_group(services().admin, actor(), org, data)
    except PdpError as exc:
        return _form("group_form.html", present, error=exc, **context)
    who = data.manager.login or (data.manager.new_user.login if data.manager.new_user else "")
    return _back(
        org, f"Le groupe {data.code} a été créé ; son responsable d'habilitations est {who}."
    )


@bp.post(f"{GROUPS}/nouveau")
def group_create(org: str) -> Response:
    """Fiche 7: create the top-level group with its manager (R-GRP-1, R-ADM-3)."""
    return _create(org, top=True)


@bp.post(f"{GROUPS}/sous-groupe/nouveau")
def subgroup_create(org: str) -> Response:
    """ "Créer un sous-groupe" (R-GRP-1, R-GRP-2, R-ADM-3)."""
    return _create(org, top=False)


# -- fiches 10, 14, 16: edit a group, name or replace its manager ---------------------------------


def _edit_context(org: str, code: str) -> dict[str, Any]:
    detail = groups.group_detail(services().admin, actor(), org, code).group
    manager = detail.manager.login if detail.manager else None
    may_set_manager = allowed(Action.GROUP_MANAGER_SET, group_target(org, code))
    return {
        "org": org,
        "group": detail,
        "current_manager": manager,
        "fields": EDIT_FIELDS,
        "new_fields": NEW_USER_FIELDS,
        "managers": _managers(org, code) if may_set_manager else [],
        "new_manager": NEW_MANAGER,
        "may_set_manager": may_set_manager,
    }


def _edit_form(context: dict[str, Any]) -> frozenset[str]:
    """The fields the edit form shows (the manager picker only to who may name one)."""
    names = frozenset(f.name for f in EDIT_FIELDS)
    return names | MANAGER_FIELDS if context["may_set_manager"] else names


@bp.get(f"{GROUPS}/<code>/modifier")
def group_edit_form(org: str, code: str) -> Response:
    """Fiches 10, 14, 16: "Modifier un groupe utilisateurs"."""
    services().admin.require(actor(), Action.GROUP_EDIT, Target("group", org, code))
    context = _edit_context(org, code)
    values = {
        **context["group"].model_dump(mode="json"),
        "manager": context["current_manager"] or "",
    }
    return _form("group_edit.html", _edit_form(context), values=values, **context)


@bp.post(f"{GROUPS}/<code>/modifier")
def group_edit(org: str, code: str) -> Response:
    """Fiches 10, 14, 16: save the label and dates that changed (a closing date closes,
    R-GRP-2) and the new manager, saying whom they replace (R-ADM-3), in one write: all or
    nothing."""
    context = _edit_context(org, code)
    wanted = changes(request.form, EDIT_FIELDS, context["group"].model_dump(mode="json"))
    data, errors = parse(GroupEdit, wanted)
    manager: dict[str, Any] | None = None
    # Whom the form showed as the manager: replacing someone else is refused (R-ADM-3).
    replaces = request.form.get("replaces", "").strip() or None
    if context["may_set_manager"]:
        manager, manager_errors = _manager_ref(request.form, replaces)
        errors.update(manager_errors)
    present = _edit_form(context)
    if data is None or errors:
        return _form("group_edit.html", present, 400, errors=errors, **context)
    body = None if manager is None else ManagerSet.model_validate({**manager, "replaces": replaces})

    def write() -> GroupAndManagerEdited:
        return groups.edit_group_and_manager(services().admin, actor(), org, code, data, body)

    # Closing the group or replacing its manager asks first, with what it will do (its preview);
    # a refusal stays on the form.
    replaced = context["current_manager"] if body is not None else None
    if (data.closes_on is not None or replaced) and request.form.get("confirmer") != "oui":
        preview = consequences(write)
        if isinstance(preview, PdpError):
            return _form("group_edit.html", present, error=preview, **context)
        carried = [(k, v) for k, v in request.form.items(multi=True) if k != "csrf_token"]
        new = body.login or (body.new_user.login if body.new_user else None) if body else None
        return page(
            "group_edit_confirm.html",
            org=org,
            group=context["group"],
            closes_on=data.closes_on,
            replaced=replaced,
            manager=new,
            preview=preview,
            carried=carried,
        )
    try:
        done = write()
    except PdpError as exc:
        return _form("group_edit.html", present, error=exc, **context)
    for notice in done.notices:
        flash(notice.message, "info")
    if data.closes_on is not None:
        return _back(org, f"Le groupe {code} sera clôturé le {data.closes_on:%d/%m/%Y}.")
    return _back(org, f"Les modifications du groupe {code} sont enregistrées.")


# -- fiche 11: close a group ----------------------------------------------------------------------


@bp.get(f"{GROUPS}/<code>/cloturer")
def group_close_confirm(org: str, code: str) -> Response:
    """Fiche 11: the confirmation asked before closing ("Oui" / "Non")."""
    services().admin.require(actor(), Action.GROUP_CLOSE, Target("group", org, code))
    detail = groups.group_detail(services().admin, actor(), org, code).group
    preview = consequences(lambda: groups.close_group(services().admin, actor(), org, code))
    return page("group_close.html", org=org, group=detail, preview=preview)


@bp.post(f"{GROUPS}/<code>/cloturer")
def group_close(org: str, code: str) -> Response:
    """Fiche 11: close the group today, and its sub-groups; members are detached, not closed
    (R-GRP-2)."""
    closed = groups.close_group(services().admin, actor(), org, code).closed
    return _back(
        org,
        f"Le groupe {code} est clôturé à compter d'aujourd'hui"
        + (f" (avec : {', '.join(c for c in closed if c != code)})" if len(closed) > 1 else "")
        + ". Ses membres en sont détachés.",
    )
