"""Administrative decisions (R-ADM-7): may actor A do action X on target T?

The table of rights is data (``policies/admin_policy.csv``, R-ADM-5): a *capacity* may do an
action (a member of ``pdp.engine.actions.Action``; ``load_rights`` checks that the table names
them all and nothing else) on a *kind* of target over a *scope*. Casbin defines the semantics
(``policies/admin.conf`` over the lines of ``pdp.engine.casbin_lines.admin_lines``); this module
answers the same question from the engine's index, and the differential tests check that they
agree. What an actor holds:

- ``operator``: a Caf-side account (R-CON-4), in every domain;
- ``partner_admin``: an open designation in the target's organisation (R-ADM-1);
- ``manager``: manages an open group of the target's organisation (R-ADM-3);
- ``afas_habiliter``: may use ``afas:habiliter`` in the target's organisation (R-AFAS-2).

Scopes: ``domain`` (anywhere in the organisation), ``perimeter`` (the target group is managed by
the actor or lies below such a group, R-ADM-4; a target user's open memberships all lie there and
the user is no partner admin, R-USR-5) and ``below`` (strictly below a managed group).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from pdp.core.errors import BadRequest, ConfigurationError
from pdp.engine.actions import Action
from pdp.engine.decision import Reason
from pdp.engine.entries import OrgPartition, UserEntry
from pdp.engine.index import Index
from pdp.policies import ADMIN_POLICY_PATH

CAPACITIES = ("operator", "partner_admin", "manager", "afas_habiliter")
SCOPES = ("domain", "perimeter", "below")
KINDS = ("platform", "organisation", "group", "user")
_CODE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_TARGET = re.compile(
    rf"^(?:(platform)|organisation:({_CODE})|group:({_CODE})/({_CODE})|user:(\S{{1,120}}))$"
)


class AdminReason(StrEnum):
    """Why an administrative action is allowed or refused. Public and stable (R-ADM-7)."""

    ALLOWED = "ALLOWED"
    UNKNOWN_ACTOR = "UNKNOWN_ACTOR"
    ACTOR_NOT_YET_OPEN = "ACTOR_NOT_YET_OPEN"
    ACTOR_CLOSED = "ACTOR_CLOSED"
    UNKNOWN_TARGET = "UNKNOWN_TARGET"
    OTHER_ORGANISATION = "OTHER_ORGANISATION"
    NOT_PERMITTED = "NOT_PERMITTED"
    OUTSIDE_PERIMETER = "OUTSIDE_PERIMETER"
    TARGET_IS_PARTNER_ADMIN = "TARGET_IS_PARTNER_ADMIN"
    AFAS_HABILITER_REQUIRED = "AFAS_HABILITER_REQUIRED"
    ENGINE_ERROR = "ENGINE_ERROR"
    POLICY_UNAVAILABLE = "POLICY_UNAVAILABLE"


ADMIN_MESSAGES: dict[AdminReason, str] = {
    AdminReason.ALLOWED: "Action autorisée.",
    AdminReason.UNKNOWN_ACTOR: "Utilisateur inconnu.",
    AdminReason.ACTOR_NOT_YET_OPEN: "Votre compte n'est pas encore ouvert.",
    AdminReason.ACTOR_CLOSED: "Votre compte est clôturé (R-USR-4).",
    AdminReason.UNKNOWN_TARGET: "L'objet de l'action est introuvable.",
    AdminReason.OTHER_ORGANISATION: "L'objet de l'action appartient à un autre organisme.",
    AdminReason.NOT_PERMITTED: (
        "Votre profil ne permet pas cette action (tableau des droits, R-ADM-5)."
    ),
    AdminReason.OUTSIDE_PERIMETER: (
        "Cet objet est hors du périmètre des groupes dont vous êtes responsable habilitations "
        "(R-ADM-4, R-ADM-6)."
    ),
    AdminReason.TARGET_IS_PARTNER_ADMIN: (
        "Un responsable habilitations ne peut pas agir sur un administrateur partenaire (R-USR-5)."
    ),
    AdminReason.AFAS_HABILITER_REQUIRED: (
        "Gérer les profils Afas demande d'appartenir à un groupe qui porte le droit "
        "AFAS – Habiliter (R-AFAS-2)."
    ),
    AdminReason.ENGINE_ERROR: "Erreur interne lors de la décision : action refusée par précaution.",
    AdminReason.POLICY_UNAVAILABLE: (
        "Les habilitations n'ont pas pu être mises à jour depuis trop longtemps : "
        "action refusée par précaution."
    ),
}


class Target(NamedTuple):
    """What an action is about: ``kind`` and, as they apply, organisation, group or login."""

    kind: str
    organisation: str | None = None
    group: str | None = None
    login: str | None = None

    def __str__(self) -> str:
        if self.kind == "platform":
            return "platform"
        if self.kind == "organisation":
            return f"organisation:{self.organisation}"
        if self.kind == "group":
            return f"group:{self.organisation}/{self.group}"
        return f"user:{self.login}"


def parse_target(text: str) -> Target:
    """Parse "platform", "organisation:<code>", "group:<org>/<code>" or "user:<login>"."""
    m = _TARGET.match(text)
    if m is None:
        raise BadRequest(
            "Cible invalide : attendu platform, organisation:<code>, group:<organisme>/<code> "
            "ou user:<login>.",
            code="INVALID_TARGET",
        )
    platform, org, group_org, group, login = m.groups()
    if platform:
        return Target("platform")
    if org:
        return Target("organisation", org)
    if group:
        return Target("group", group_org, group)
    return Target("user", login=login)


class Rule(NamedTuple):
    """One line of the table of rights."""

    capacity: str
    kind: str
    action: Action
    scope: str


@dataclass(frozen=True)
class Rights:
    """The table of rights, by (kind, action)."""

    rules: tuple[Rule, ...]

    @property
    def actions(self) -> frozenset[Action]:
        """Every action the table names."""
        return frozenset(r.action for r in self.rules)

    def kinds_for(self, action: Action) -> frozenset[str]:
        """The kinds of target ``action`` applies to."""
        return frozenset(r.kind for r in self.rules if r.action == action)

    def for_target(self, kind: str, action: Action) -> tuple[Rule, ...]:
        """The rules that may allow ``action`` on a target of ``kind``."""
        return tuple(r for r in self.rules if r.kind == kind and r.action == action)

    def validate(self, action: Action, target: Target) -> None:
        """Raise BadRequest (ACTION_TARGET_MISMATCH) for a meaningless question. (An action
        the table lacks cannot be named: ``load_rights`` checks the table names them all.)"""
        kinds = self.kinds_for(action)
        if target.kind not in kinds:
            raise BadRequest(
                f"L'action {action} porte sur : {', '.join(sorted(kinds))}.",
                code="ACTION_TARGET_MISMATCH",
            )


def load_rights(path: Path = ADMIN_POLICY_PATH) -> Rights:
    """Read and validate the table of rights; raise ConfigurationError when it is wrong."""
    rows: list[tuple[str, str, str, str]] = []
    named: dict[str, int] = {}  # action -> the first line naming it
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"table of rights {path}: {exc}") from exc
    for number, row in enumerate(csv.reader(text.splitlines(), skipinitialspace=True), 1):
        if not row or row[0].lstrip().startswith("#"):
            continue
        where = f"table of rights {path.name}, line {number}"
        if len(row) != 5 or row[0] != "p":
            raise ConfigurationError(f"{where}: expected 'p, capacity, kind, action, scope'")
        capacity, kind, action, scope = (v.strip() for v in row[1:])
        if capacity not in CAPACITIES:
            raise ConfigurationError(f"{where}: unknown capacity {capacity!r}")
        if kind not in KINDS:
            raise ConfigurationError(f"{where}: unknown target kind {kind!r}")
        if scope not in SCOPES:
            raise ConfigurationError(f"{where}: unknown scope {scope!r}")
        if scope != "domain" and (capacity != "manager" or kind == "organisation"):
            raise ConfigurationError(f"{where}: only managers act in a perimeter of groups/users")
        named.setdefault(action, number)
        rows.append((capacity, kind, action, scope))
    _check_actions(path, named)
    rules = [Rule(capacity, kind, Action(action), scope) for capacity, kind, action, scope in rows]
    if len(set(rules)) != len(rules):
        raise ConfigurationError(f"table of rights {path}: duplicate lines")
    return Rights(tuple(rules))


def _check_actions(path: Path, named: dict[str, int]) -> None:
    """Raise ConfigurationError, naming them, unless the table's actions (``named``, with the
    first line of each) are exactly the members of ``Action``: the code names actions by
    member, so either side without the other is a mistake to catch before serving."""
    members = {a.value for a in Action}
    unknown = [f"{a!r} (line {n})" for a, n in sorted(named.items()) if a not in members]
    unused = sorted(members - named.keys())
    problems = []
    if unknown:
        problems.append(f"actions pdp.engine.actions.Action lacks: {', '.join(unknown)}")
    if unused:
        problems.append(f"members of Action no line names: {', '.join(unused)}")
    if problems:
        raise ConfigurationError(f"table of rights {path}: {'; '.join(problems)}")


# -- The fast path ---------------------------------------------------------------------------


def _open(windows: list[tuple[int, int, int]] | tuple[()], day: int) -> set[int]:
    return {key for key, s, e in windows if s <= day < e}


def managed_groups(index: Index, actor: UserEntry, org: OrgPartition, day: int) -> set[int]:
    """The open groups of ``org`` that ``actor`` manages on ``day`` (R-ADM-3)."""
    out = set()
    for gid in _open(actor.managed, day):
        group = org.groups.get(gid)
        if group is not None and group.start <= day < group.end:
            out.add(gid)
    return out


def in_perimeter(org: OrgPartition, gid: int, managed: set[int], strict: bool) -> bool:
    """Whether group ``gid`` is a managed group (unless ``strict``) or lies below one."""
    cur: int | None = gid
    for _ in range(len(org.groups) + 1):  # a corrupt tree (a cycle) cannot loop forever
        if cur is None:
            return False
        group = org.groups.get(cur)
        if group is None:
            return False
        if cur in managed and not (strict and cur == gid):
            return True
        cur = group.parent_id
    return False


def is_partner_admin(org: OrgPartition, user_id: int, day: int) -> bool:
    """Whether ``user_id`` holds an open partner admin designation of ``org`` (R-ADM-1)."""
    return any(uid == user_id and s <= day < e for uid, s, e in org.admins)


def authorise(
    index: Index, rights: Rights, login: str, action: Action, target: Target, day: int
) -> AdminReason:
    """Decide whether ``login`` may do ``action`` on ``target`` on day ordinal ``day``."""
    actor = index.users.get(login)
    if actor is None:
        return AdminReason.UNKNOWN_ACTOR
    if day < actor.start:
        return AdminReason.ACTOR_NOT_YET_OPEN
    if day >= actor.end:
        return AdminReason.ACTOR_CLOSED
    org: OrgPartition | None = None
    group_id: int | None = None
    target_user: UserEntry | None = None
    if target.kind != "platform":
        if target.kind == "user":
            target_user = index.users.get(target.login or "")
            org = target_user.org if target_user is not None else None
        else:
            org = index.org_by_code.get(target.organisation or "")
            if org is not None and target.kind == "group":
                group_id = org.group_by_code.get(target.group or "")
                if group_id is None:
                    org = None
        if org is None:
            return AdminReason.UNKNOWN_TARGET
    denial = AdminReason.NOT_PERMITTED
    managed: set[int] | None = None
    for rule in rights.for_target(target.kind, action):
        if rule.capacity == "operator":
            if actor.is_operator:
                return AdminReason.ALLOWED
            continue
        if org is None or actor.organisation_id != org.id:
            continue
        if rule.capacity == "partner_admin":
            if is_partner_admin(org, actor.id, day):
                return AdminReason.ALLOWED
            continue
        if rule.capacity == "afas_habiliter":
            if index.decide(login, "afas", "habiliter", None, day).reason is Reason.ALLOWED:
                return AdminReason.ALLOWED
            denial = AdminReason.AFAS_HABILITER_REQUIRED
            continue
        if managed is None:
            managed = managed_groups(index, actor, org, day)
        if not managed:
            continue
        if rule.scope == "domain":
            return AdminReason.ALLOWED
        if group_id is not None:
            if in_perimeter(org, group_id, managed, strict=rule.scope == "below"):
                return AdminReason.ALLOWED
            denial = AdminReason.OUTSIDE_PERIMETER
            continue
        assert target_user is not None
        if is_partner_admin(org, target_user.id, day):
            denial = AdminReason.TARGET_IS_PARTNER_ADMIN
            continue
        if all(
            in_perimeter(org, gid, managed, strict=rule.scope == "below")
            for gid, s, e in target_user.memberships
            if s <= day < e
        ):
            return AdminReason.ALLOWED
        denial = AdminReason.OUTSIDE_PERIMETER
    other_org = org is not None and actor.organisation_id != org.id
    if denial is AdminReason.NOT_PERMITTED and other_org and not actor.is_operator:
        return AdminReason.OTHER_ORGANISATION
    return denial
