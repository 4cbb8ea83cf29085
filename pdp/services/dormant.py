"""Dormant rights (R-CNIL-3 … R-CNIL-6): users holding rights they have not used for N days.

A *right* here is a (service, role) an open user holds today through an open membership of an
open group carrying it, the service being subscribed (what checks answer, R-DEC-1: read from the
engine's index, like the access document). It is *dormant* after ``days`` days when it has been
held for at least that long (since ``today − days`` or earlier, without a break) and no allowed
check used it since then: its last use (``pdp.records.last_use``, R-CNIL-1) is on
``today − days`` or before, or there is none. Afas profiles are per-user rights, not
memberships: they are not reported.

The report reads the engine's index (memory) and the last uses of the users holding rights
old enough (one query per 500 users, or one pass over ``last_use`` for a large set); it never
reads the decision log.

Who may read it: an organisation's, ``access.read`` (operators; its partner admins), like the
access document; the national one, ``log.read`` on the platform (operators): last uses come
from the decision log, which operators alone read nationally. Both decided and logged like
every administrative read (R-ADM-7).
"""

from __future__ import annotations

import datetime as dt
import gc
import time
from typing import Any

from pydantic import BaseModel, Field

from pdp.core.errors import BadRequest, NotFound, Unavailable
from pdp.engine.actions import Action
from pdp.engine.decision import MESSAGES, Reason
from pdp.engine.entries import OrgPartition
from pdp.engine.index import Index
from pdp.engine.rules import Target
from pdp.observability import metrics
from pdp.records.last_use import last_uses
from pdp.services.admin.service import AdminService

DEFAULT_DAYS = 90
MAX_DAYS = 3660  # ten years: beyond, the question means nothing for a habilitation


class DormantRight(BaseModel):
    """A right held since ``held_since`` and unused since ``last_used_on`` (null: never)."""

    service: str
    role: str
    groups: list[str] = Field(description="The groups whose membership brings the right.")
    held_since: dt.date
    last_used_on: dt.date | None


class DormantUser(BaseModel):
    """A user with at least one dormant right, and those rights."""

    organisation: str
    login: str
    rights: list[DormantRight]


class DormantReport(BaseModel):
    """The users of an organisation (``organisation`` null: every organisation) holding
    rights unused for ``days`` days on ``at``: not used since ``unused_since`` inclusive."""

    organisation: str | None
    days: int
    at: dt.date
    unused_since: dt.date
    revision: int
    dormant_users: int
    dormant_rights: int
    users: list[DormantUser]


def parse_days(raw: str | None, *, blank: bool = False) -> int:
    """The ``days`` asked (default 90 when absent, or empty with ``blank``: a form's empty
    field); BadRequest INVALID_DAYS unless a whole number of days from 1 to ``MAX_DAYS``
    (R-CNIL-4)."""
    if raw is None or (blank and raw == ""):
        return DEFAULT_DAYS
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise BadRequest(
            f"Nombre de jours invalide : {raw[:40]!r} (un nombre entier de 1 à {MAX_DAYS}).",
            code="INVALID_DAYS",
            details={"min": 1, "max": MAX_DAYS},
        )
    return int(text)


def report(svc: AdminService, actor: str, organisation: str | None, days: int) -> DormantReport:
    """The dormant rights of ``organisation`` (None: the nation) for ``actor``: Forbidden
    unless they may read it, NotFound (UNKNOWN_ORGANISATION), Unavailable when the engine's
    rules are too old or the store cannot be read."""
    if organisation is None:
        action, target = Action.LOG_READ, Target("platform")
    else:
        action, target = Action.ACCESS_READ, Target("organisation", organisation)
    engine = svc.engine
    with svc.read(actor, action, target) as session:
        engine.refresh()
        if engine.stale:
            raise Unavailable(MESSAGES[Reason.POLICY_UNAVAILABLE])
        index = engine.index
        if organisation is None:
            orgs = index.sorted_orgs()
        else:
            org = index.org_by_code.get(organisation)
            if org is None:
                raise NotFound(
                    f"Organisme inconnu : {organisation!r}.", code="UNKNOWN_ORGANISATION"
                )
            orgs = [org]
        today = svc.today()
        cutoff = today - dt.timedelta(days=days)
        # As the engine does for its index: no collection while hundreds of thousands of
        # short-lived containers are made (at national scale it was most of the time).
        gc.disable()
        try:
            held = held_rights(index, orgs, today.toordinal(), cutoff.toordinal())
            used = last_uses(session, {login for _, login in held}, masker=svc.masker)
            out = _report(organisation, days, today, cutoff, index.revision, held, used)
        finally:
            gc.enable()
    if organisation is None and days == DEFAULT_DAYS:
        metrics.dormant_counted(out.dormant_users, out.dormant_rights, time.time())
    return out


HeldRights = dict[tuple[str, str], tuple[int, set[str]]]  # (service, role) -> (since, groups)


def _report(
    organisation: str | None,
    days: int,
    today: dt.date,
    cutoff: dt.date,
    revision: int,
    held: dict[tuple[str, str], HeldRights],
    used: dict[tuple[str, str, str], dt.date],
) -> DormantReport:
    """The report of the rights ``held`` long enough, those ``used`` since ``cutoff`` left
    out."""
    users: list[dict[str, Any]] = []
    for (org_code, login), rights in sorted(held.items()):
        dormant = [
            {
                "service": service,
                "role": role,
                "groups": sorted(groups),
                "held_since": dt.date.fromordinal(since),
                "last_used_on": last,
            }
            for (service, role), (since, groups) in sorted(rights.items())
            if (last := used.get((login, service, role))) is None or last <= cutoff
        ]
        if dormant:
            users.append({"organisation": org_code, "login": login, "rights": dormant})
    # Validated in one call (pydantic's core walks the whole tree at once): a model built per
    # right would cost more than finding the rights.
    return DormantReport.model_validate(
        {
            "organisation": organisation,
            "days": days,
            "at": today,
            "unused_since": cutoff,
            "revision": revision,
            "dormant_users": len(users),
            "dormant_rights": sum(len(u["rights"]) for u in users),
            "users": users,
        }
    )


def held_rights(
    index: Index, orgs: list[OrgPartition], day: int, cutoff: int
) -> dict[tuple[str, str], HeldRights]:
    """Per (organisation, login): the rights held on day ordinal ``day`` through memberships
    since ``cutoff`` or earlier (R-CNIL-3), each with the day it has been held since and the
    groups bringing it. Users with none are left out."""
    out: dict[tuple[str, str], HeldRights] = {}
    for org in orgs:
        # Per service, the day its open subscription opened (R-CON-2: no open subscription,
        # no right): read once per organisation, not per user.
        subscribed = {
            service: min(opened)
            for service, windows in org.subscriptions.items()
            if (opened := [s for _, s, e in windows if s <= day < e])
        }
        for login in org.logins:
            user = index.users.get(login)
            if user is None or not user.grants or not user.start <= day < user.end:
                continue
            rights: HeldRights = {}
            for service, entries in user.grants.items():
                opened_on = subscribed.get(service)
                if opened_on is None:
                    continue
                for start, end, role, (_service, _role, group, source) in entries:
                    if source != "group" or not start <= day < end:
                        continue
                    since = start if start > opened_on else opened_on
                    known = rights.get((service, role))
                    if known is None:
                        rights[(service, role)] = (since, {group or ""})
                    else:
                        known[1].add(group or "")
                        if since < known[0]:
                            rights[(service, role)] = (since, known[1])
            for key in [k for k, v in rights.items() if v[0] > cutoff]:
                del rights[key]
            if rights:
                out[(org.code, login)] = rights
    return out
