"""Fiches 1 to 6, "Mes utilisateurs": list, create, edit or close, detail, attach to a group,
membership dates. Each view parses the form, calls ``pdp.services.admin.users`` and renders; a
refusal
is the service's French message on the form (kept filled), with the API's status."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response

from pdp.core.errors import PdpError
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.services.admin import afas, contracts, groups, users
from pdp.services.admin.requests import (
    AfasProfileNew,
    MembershipEdit,
    MembershipNew,
    NewUser,
    UserEdit,
)
from pdp.services.admin.responses import GroupItem, UserDetailOut
from pdp.web.console.blueprint import bp
from pdp.web.console.common import actor, allowed, consequences, form_page, page
from pdp.web.console.forms import (
    DATE_FIELDS,
    EDIT_FIELDS,
    FIELD_OF_CODE,
    USER_FIELDS,
    Field,
    changes,
    parse,
    submitted,
)
from pdp.web.container import services

USERS = "/organisations/<org>/utilisateurs"


def _form(
    template: str, status: int = 200, error: PdpError | None = None, **context: Any
) -> Response:
    """A form page; a service refusal is shown in the summary and next to its field."""
    field = FIELD_OF_CODE.get(error.code) if error is not None else None
    return form_page(template, status, error, field, **context)


def _back(org: str, message: str) -> Response:
    flash(message, "success")
    return redirect(url_for("console.users_list", org=org))


def _member_groups(org: str) -> list[GroupItem]:
    """The open groups of ``org`` whose members the signed-in user may change (R-ADM-7)."""
    listing = groups.list_groups(services().admin, actor(), org).groups
    return [
        g for g in listing if g.open and allowed(Action.GROUP_MEMBERS_EDIT, f"group:{org}/{g.code}")
    ]


USERS_PAGE = 50  # users a page of the list shows (each row asks the engine what it may do)


@bp.get(USERS)
def users_list(org: str) -> Response:
    """Fiche 5: the organisation's users, or a group's members ("Sélectionner un groupe")."""
    group = request.args.get("groupe") or None
    search = request.args.get("recherche") or None
    listing = users.list_users(
        services().admin,
        actor(),
        org,
        group,
        q=search,
        limit=USERS_PAGE,
        cursor=request.args.get("suite") or None,
    )
    all_groups = groups.list_groups(services().admin, actor(), org).groups
    rows = [
        {**u.model_dump(mode="json"), "editable": allowed(Action.USER_EDIT, f"user:{u.login}")}
        for u in listing.users
    ]
    members_editable = any(
        allowed(Action.GROUP_MEMBERS_EDIT, f"group:{org}/{g.code}") for g in all_groups if g.open
    )
    return page(
        "users.html",
        org=org,
        group=group,
        search=search,
        next_cursor=listing.next_cursor,
        groups=all_groups,
        rows=rows,
        may_create=allowed(Action.USER_CREATE, f"organisation:{org}"),
        members_editable=members_editable,
    )


@bp.get(f"{USERS}/nouveau")
def user_new(org: str) -> Response:
    """Fiche 1: the form "Créer un utilisateur partenaire"."""
    services().admin.require(actor(), Action.USER_CREATE, Target("organisation", org))
    return _form("user_form.html", org=org, fields=USER_FIELDS, login=None, values={})


@bp.post(f"{USERS}/nouveau")
def user_create(org: str) -> Response:
    """Fiche 1: create the user (no rights yet, R-USR-2)."""
    data, errors = parse(NewUser, submitted(request.form, USER_FIELDS))
    if data is None:
        return _form("user_form.html", 400, org=org, fields=USER_FIELDS, login=None, errors=errors)
    try:
        users.create_user(services().admin, actor(), org, data)
    except PdpError as exc:
        return _form("user_form.html", error=exc, org=org, fields=USER_FIELDS, login=None)
    return _back(org, f"L'utilisateur {data.login} a été créé. Il n'a encore aucun droit.")


@bp.get(f"{USERS}/<login>")
def user_view(org: str, login: str) -> Response:
    """Fiche 5: "Visualiser un utilisateur partenaire", with its "Profils Afas" (R-AFAS-2)."""
    return _detail_page(org, login)


def _detail_page(
    org: str,
    login: str,
    status: int = 200,
    error: PdpError | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    """The detail page; ``error``/``errors``: a refusal of the "Profils Afas" forms."""
    detail = _current(org, login)
    catalogue = services().admin.catalogue.services
    labels = {name: s.label for name, s in catalogue.items()}
    return page(
        "user_detail.html",
        error.status if error is not None else status,
        org=org,
        user=detail,
        labels=labels,
        editable=allowed(Action.USER_EDIT, f"user:{login}"),
        afas=_afas_section(org, login, detail, error, errors or {}),
    )


def _current(org: str, login: str) -> UserDetailOut:
    """The user's detail, as the service reads it (404 for an unknown user)."""
    return users.user_detail(services().admin, actor(), org, login).user


@bp.get(f"{USERS}/<login>/modifier")
def user_edit_form(org: str, login: str) -> Response:
    """Fiches 2 and 3: "Modifier un utilisateur partenaire" (a closing date closes)."""
    services().admin.require(actor(), Action.USER_EDIT, Target("user", login=login))
    current = _current(org, login).model_dump(mode="json")
    return _form("user_form.html", org=org, fields=EDIT_FIELDS, login=login, values=current)


@bp.post(f"{USERS}/<login>/modifier")
def user_edit(org: str, login: str) -> Response:
    """Fiches 2 and 3: save the fields that changed."""
    current = _current(org, login).model_dump(mode="json")
    data, errors = parse(UserEdit, changes(request.form, EDIT_FIELDS, current))
    context: dict[str, Any] = {"org": org, "fields": EDIT_FIELDS, "login": login}
    if data is None:
        return _form("user_form.html", 400, errors=errors, **context)
    if data.closes_on is not None and request.form.get("confirmer") != "oui":
        # Closing a user asks first, with what it will do (the write's own preview).
        preview = consequences(lambda: users.edit_user(services().admin, actor(), org, login, data))
        if isinstance(preview, PdpError):
            return _form("user_form.html", error=preview, **context)
        sent = [(k, v) for k, v in request.form.items(multi=True) if k != "csrf_token"]
        return page("user_close.html", org=org, login=login, data=data, sent=sent, preview=preview)
    try:
        users.edit_user(services().admin, actor(), org, login, data)
    except PdpError as exc:
        return _form("user_form.html", error=exc, **context)
    if data.closes_on is not None:
        return _back(org, f"L'utilisateur {login} sera clôturé le {data.closes_on:%d/%m/%Y}.")
    return _back(org, f"Les modifications de {login} sont enregistrées.")


@bp.get(f"{USERS}/<login>/groupes/ajouter")
def attach_form(org: str, login: str) -> Response:
    """Fiche 4: "Ajouter un utilisateur au groupe"."""
    _current(org, login)  # 404 for an unknown user
    return _form("attach.html", org=org, login=login, groups=_member_groups(org), values={})


@bp.post(f"{USERS}/<login>/groupes/ajouter")
def attach(org: str, login: str) -> Response:
    """Fiche 4: attach the user to the chosen group (R-MEM-1)."""
    names = ("group", "opens_on", "closes_on")
    values = {k: request.form.get(k, "").strip() for k in names if request.form.get(k, "").strip()}
    data, errors = parse(MembershipNew, values)
    context: dict[str, Any] = {"org": org, "login": login}
    if data is None:
        return _form("attach.html", 400, errors=errors, groups=_member_groups(org), **context)
    try:
        users.attach(services().admin, actor(), org, login, data)
    except PdpError as exc:
        return _form("attach.html", error=exc, groups=_member_groups(org), **context)
    return _back(org, f"{login} est rattaché(e) au groupe {data.group}.")


@bp.get(f"{USERS}/<login>/appartenances")
def memberships(org: str, login: str) -> Response:
    """Fiche 6: "Gérer l'appartenance de l'utilisateur": the user's memberships."""
    detail = _current(org, login)
    rows = [
        {
            **m.model_dump(mode="json"),
            # Still editable (the service's flag) and in the actor's reach (R-ADM-7).
            "editable": m.editable and allowed(Action.GROUP_MEMBERS_EDIT, f"group:{org}/{m.group}"),
        }
        for m in detail.memberships
    ]
    return page("memberships.html", org=org, user=detail, rows=rows)


def _membership(org: str, login: str, group: str) -> dict[str, Any]:
    """The user's latest membership of ``group`` (the service says if it is still current), as
    the form's values."""
    found = [m for m in _current(org, login).memberships if m.group == group]
    return found[-1].model_dump(mode="json") if found else {}


@bp.get(f"{USERS}/<login>/appartenances/<group>")
def membership_form(org: str, login: str, group: str) -> Response:
    """Fiche 6: "Modifier les dates d'appartenance au groupe"."""
    services().admin.require(actor(), Action.GROUP_MEMBERS_EDIT, Target("group", org, group))
    return _form(
        "membership_form.html",
        org=org,
        login=login,
        group=group,
        fields=DATE_FIELDS,
        values=_membership(org, login, group),
    )


@bp.post(f"{USERS}/<login>/appartenances/<group>")
def membership_edit(org: str, login: str, group: str) -> Response:
    """Fiche 6: save the membership's new dates; a closing date detaches then (R-MEM-2)."""
    current = _membership(org, login, group)
    wanted = changes(request.form, DATE_FIELDS, current)
    context: dict[str, Any] = {"org": org, "login": login, "group": group, "fields": DATE_FIELDS}
    if not wanted:
        # An empty edit would detach today (the API's DELETE): the form asks for a change.
        return _form(
            "membership_form.html",
            400,
            errors={"closes_on": "Saisissez une nouvelle date."},
            **context,
        )
    data, errors = parse(MembershipEdit, wanted)
    if data is None:
        return _form("membership_form.html", 400, errors=errors, **context)

    def write() -> object:
        return users.edit_membership(services().admin, actor(), org, login, group, data)

    # A closing date detaches then: asked first, with what it will do (its preview).
    if data.closes_on is not None and request.form.get("confirmer") != "oui":
        preview = consequences(write)
        if isinstance(preview, PdpError):
            return _form("membership_form.html", error=preview, **context)
        carried = [(k, v) for k, v in request.form.items(multi=True) if k != "csrf_token"]
        return page(
            "detach.html",
            org=org,
            login=login,
            group=group,
            preview=preview,
            closes_on=data.closes_on,
            carried=carried,
        )
    try:
        write()
    except PdpError as exc:
        return _form("membership_form.html", error=exc, **context)
    return _back(org, f"Les dates d'appartenance de {login} au groupe {group} sont enregistrées.")


@bp.get(f"{USERS}/<login>/appartenances/<group>/detacher")
def detach_confirm(org: str, login: str, group: str) -> Response:
    """Fiche 6: the confirmation asked before detaching, with what it will do (its preview)."""
    services().admin.require(actor(), Action.GROUP_MEMBERS_EDIT, Target("group", org, group))
    preview = consequences(
        lambda: users.edit_membership(
            services().admin, actor(), org, login, group, MembershipEdit()
        )
    )
    return page("detach.html", org=org, login=login, group=group, preview=preview)


@bp.post(f"{USERS}/<login>/appartenances/<group>/detacher")
def detach(org: str, login: str, group: str) -> Response:
    """Fiche 6: detach the user from the group today (R-MEM-2; nothing is deleted)."""
    users.edit_membership(services().admin, actor(), org, login, group, MembershipEdit())
    return _back(org, f"{login} est détaché(e) du groupe {group} à compter d'aujourd'hui.")


# -- R-AFAS-1, R-AFAS-2: the user's Afas profiles, on the detail page ---------------------------


def _subscribes_to_afas(org: str) -> bool:
    """Whether the organisation's contract holds an open Afas subscription (R-CON-2), as
    ``pdp.services.admin.contracts`` reports it; without ``contract.read`` (a manager), whether the
    signed-in user may read Afas profiles there (only the holders of ``afas:habiliter``, which
    the engine grants only under an open Afas subscription)."""
    target = f"organisation:{org}"
    if not allowed(Action.CONTRACT_READ, target):
        return allowed(Action.AFAS_PROFILES_READ, target)
    return any(
        conv.open and sub.open and sub.service == afas.AFAS
        for conv in contracts.contract(services().admin, actor(), org).conventions
        for sub in conv.subscriptions
    )


def _afas_section(
    org: str,
    login: str,
    detail: UserDetailOut,
    error: PdpError | None,
    errors: dict[str, str],
) -> dict[str, Any]:
    """The "Profils Afas" section (R-AFAS-1, R-AFAS-2): shown when the organisation subscribes
    to Afas or the user holds profiles (or to show a refusal of its forms); the list is
    ``pdp.services.admin.afas``'s (``afas.profiles.read``: else its refusal is shown), the forms
    only
    where ``afas.profiles.edit`` is allowed on the user."""
    if not (error or errors or detail.afas_profiles or _subscribes_to_afas(org)):
        return {"shown": False}
    try:
        profiles = afas.list_profiles(services().admin, actor(), org, login).profiles
        refusal = None
    except PdpError as exc:
        profiles, refusal = [], exc.message
    service = services().admin.catalogue.services.get(afas.AFAS)
    return {
        "shown": True,
        "profiles": profiles,
        "refusal": refusal,
        "catalogue": list(service.user_profiles) if service is not None else [],
        "editable": allowed(Action.AFAS_PROFILES_EDIT, f"user:{login}"),
        "error": error.message if error is not None else None,
        "errors": errors,
        "values": request.form if error is not None or errors else {},
    }


def _to_detail(org: str, login: str, message: str) -> Response:
    flash(message, "success")
    return redirect(url_for("console.user_view", org=org, login=login, _anchor="profils-afas"))


@bp.post(f"{USERS}/<login>/profils-afas")
def afas_profile_add(org: str, login: str) -> Response:
    """R-AFAS-1, R-AFAS-2: give the user the chosen Afas profile of the catalogue (from
    today); every refusal is ``pdp.services.admin.afas``'s, shown on the detail page."""
    data, errors = parse(AfasProfileNew, submitted(request.form, (Field("profile", ""),)))
    if data is None:
        return _detail_page(org, login, 400, errors={f"afas_{k}": v for k, v in errors.items()})
    try:
        afas.add_profile(services().admin, actor(), org, login, data)
    except PdpError as exc:
        return _detail_page(org, login, error=exc)
    return _to_detail(org, login, f"Le profil Afas {data.profile} est attribué à {login}.")


@bp.post(f"{USERS}/<login>/profils-afas/<profile>/retirer")
def afas_profile_remove(org: str, login: str, profile: str) -> Response:
    """R-AFAS-2, R-TIME-2: remove the user's Afas profile (it closes today, nothing is
    deleted); every refusal is ``pdp.services.admin.afas``'s, shown on the detail page."""
    try:
        afas.remove_profile(services().admin, actor(), org, login, profile)
    except PdpError as exc:
        return _detail_page(org, login, error=exc)
    return _to_detail(
        org, login, f"Le profil Afas {profile} de {login} est retiré à compter d'aujourd'hui."
    )
