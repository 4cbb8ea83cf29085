"""Fiches 9, 12 and 13, "Habilitations du groupe": a group's roles for one service, "Rôles
disponibles" and "Rôles assignés", moved between the two blocks then saved in one write, with
what the save will do shown before it (its preview), and what each role opens (R-CAT-1)."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response

from pdp.core.errors import PdpError
from pdp.engine.actions import Action
from pdp.services.admin import grants, groups
from pdp.web.console.blueprint import bp
from pdp.web.console.common import actor, allowed, consequences, page
from pdp.web.console.groups import GROUPS, group_target
from pdp.web.container import services


def _pending(name: str) -> list[str]:
    """The roles named by the form's ``name`` fields (ticked boxes, or the pending moves)."""
    return sorted({v for v in request.form.getlist(name) if v})


def _roles_page(
    org: str,
    code: str,
    service: str | None,
    to_assign: list[str],
    to_remove: list[str],
    status: int = 200,
    error: str | None = None,
) -> Response:
    admin = services().admin
    listing = groups.group_roles(admin, actor(), org, code)
    detail = groups.group_detail(admin, actor(), org, code).group
    catalogue = admin.catalogue.services
    names = sorted({r.service for r in listing.roles} | {r.service for r in listing.assignable})
    if service not in names:
        service = names[0] if names else None
    held = [r.role for r in listing.roles if r.service == service]
    assignable = [r.role for r in listing.assignable if r.service == service]
    order = catalogue[service].roles if service in catalogue else ()

    def ranked(roles: set[str]) -> list[str]:  # the catalogue's order: T1, T2, ... T21
        return sorted(roles, key=lambda r: (order.index(r) if r in order else len(order), r))

    available = ranked((set(assignable) - set(to_assign)) | set(to_remove))
    assigned = ranked((set(held) - set(to_remove)) | set(to_assign))
    pending = [(service or "", r) for r in to_assign], [(service or "", r) for r in to_remove]
    preview = (  # what "Enregistrer" will do, before it is clicked
        consequences(lambda: grants.set_group_roles(admin, actor(), org, code, *pending))
        if to_assign or to_remove
        else None
    )
    return page(
        "group_roles.html",
        status,
        org=org,
        group=detail,
        services=[(s, catalogue[s].label if s in catalogue else s) for s in names],
        service=service,
        available=available,
        assigned=assigned,
        to_assign=to_assign,
        to_remove=to_remove,
        editable=detail.editable and allowed(Action.GROUP_ROLES_EDIT, group_target(org, code)),
        error=error,
        opens=catalogue[service].opens if service in catalogue else {},  # R-CAT-1: features
        preview=preview,
    )


@bp.get(f"{GROUPS}/<code>/habilitations")
def group_roles(org: str, code: str) -> Response:
    """Fiche 9: the group's roles for the chosen service: "Rôles disponibles" on the left,
    "Rôles assignés" on the right."""
    return _roles_page(org, code, request.args.get("service") or None, [], [])


@bp.post(f"{GROUPS}/<code>/habilitations")
def group_roles_edit(org: str, code: str) -> Response:
    """Fiches 12 and 13: "Assigner rôle" and "Retirer rôle" move the ticked roles from one
    block to the other (kept in the form, nothing saved yet); "Enregistrer les modifications"
    removes then assigns them in one write, all or nothing (R-GRP-4: removing from a group
    removes from its sub-groups; a sub-group holds only its parent's roles)."""
    service = request.form.get("service", "").strip() or None
    to_assign = _pending("a_assigner")
    to_remove = _pending("a_retirer")
    step = request.form.get("etape", "")
    if step == "assigner":
        for role in _pending("disponible"):
            if role in to_remove:
                to_remove.remove(role)
            elif role not in to_assign:
                to_assign.append(role)
        return _roles_page(org, code, service, sorted(to_assign), to_remove)
    if step == "retirer":
        for role in _pending("assigne"):
            if role in to_assign:
                to_assign.remove(role)
            elif role not in to_remove:
                to_remove.append(role)
        return _roles_page(org, code, service, to_assign, sorted(to_remove))
    if not to_assign and not to_remove:
        return _roles_page(
            org,
            code,
            service,
            [],
            [],
            400,
            error="Aucune modification à enregistrer : assignez ou retirez d'abord un rôle.",
        )
    name = service or ""
    try:
        grants.set_group_roles(
            services().admin,
            actor(),
            org,
            code,
            assign=[(name, role) for role in to_assign],
            remove=[(name, role) for role in to_remove],
        )
    except PdpError as exc:
        return _roles_page(org, code, service, to_assign, to_remove, exc.status, error=exc.message)
    done = [f"{role} retiré" for role in to_remove] + [f"{role} assigné" for role in to_assign]
    flash(f"Les habilitations du groupe {code} sont enregistrées : {', '.join(done)}.", "success")
    return redirect(url_for("console.group_roles", org=org, code=code, service=service))
