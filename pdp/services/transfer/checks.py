"""The rules an organisation's records must satisfy once imported, checked in memory on what it
will hold (its stored rows and the file's), with the codes and messages of the API.

The API checks a change against today (no date in the past, R-TIME-2); an import restores
history, so each rule is checked for every day instead: a record whose dates lie in the past is
accepted, but never two partner admins too many on any day (R-ADM-1), two managers of a group
on the same day (R-ADM-3), a role no subscription or parent grants (R-GRP-4), a subscription
outside its convention or overlapping another (R-CON-1), a membership, manager or admin who is
not a user of the organisation (R-MEM-1, R-ADM-3).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from pdp.adapters.sql.models import Subscription
from pdp.core.catalogue import Catalogue
from pdp.core.errors import Conflict, NotFound, PdpError
from pdp.services.admin import store
from pdp.services.admin.contract_rules import overlaps
from pdp.services.admin.contracts import MAX_PARTNER_ADMINS

Line = int | None  # the file's line number; None for a row already stored
Window = tuple[dt.date, dt.date | None]


@dataclass
class Refusal:
    """One refused line: its number, the error's code and French message."""

    line: int
    code: str
    message: str


@dataclass
class OrgState:
    """What one organisation will hold: named records by key, the others as lists, each with
    the line it comes from (None: stored already) and its window last."""

    code: str
    conventions: dict[str, tuple[Line, str, dt.date, dt.date | None]] = field(default_factory=dict)
    users: dict[str, tuple[Line, dt.date, dt.date | None]] = field(default_factory=dict)
    # code → (line, convention, parent, opens, closes)
    groups: dict[str, tuple[Line, str, str | None, dt.date, dt.date | None]] = field(
        default_factory=dict
    )
    subscriptions: list[tuple[Line, str, str, dt.date, dt.date | None]] = field(
        default_factory=list
    )
    admins: list[tuple[Line, str, dt.date, dt.date | None]] = field(default_factory=list)
    roles: list[tuple[Line, str, str, str, dt.date, dt.date | None]] = field(default_factory=list)
    managers: list[tuple[Line, str, str, dt.date, dt.date | None]] = field(default_factory=list)
    members: list[tuple[Line, str, str, dt.date, dt.date | None]] = field(default_factory=list)
    afas: list[tuple[Line, str, str, dt.date, dt.date | None]] = field(default_factory=list)


def _open(window: Window, day: dt.date) -> bool:
    return window[0] <= day and (window[1] is None or day < window[1])


def _meet(a: Window, b: Window) -> bool:
    """Whether two windows share a day (``contract_rules.overlaps``, R-CON-1)."""
    return overlaps(Subscription(opens_on=a[0], closes_on=a[1]), b[0], b[1])


class Checker:
    """Collects the refusals of one organisation's new lines."""

    def __init__(self, state: OrgState, catalogue: Catalogue, cafs: set[str]) -> None:
        self.s = state
        self.catalogue = catalogue
        self.cafs = cafs
        self.refusals: list[Refusal] = []

    def refuse(self, line: Line, error: PdpError) -> None:
        if line is not None:
            self.refusals.append(Refusal(line, error.code, error.message))

    def run(self) -> list[Refusal]:
        self.references()
        self.subscriptions()
        self.roles()
        self.partner_admins()
        self.managers()
        self.refusals.sort(key=lambda r: r.line)
        return self.refusals

    # -- References: every key a record names exists in the organisation ---------------

    def _user(self, line: Line, login: str) -> bool:
        if login not in self.s.users:
            self.refuse(
                line,
                NotFound(f"Utilisateur inconnu dans {self.s.code} : {login!r}.", "UNKNOWN_USER"),
            )
            return False
        return True

    def _group(self, line: Line, code: str) -> bool:
        if code not in self.s.groups:
            self.refuse(
                line, NotFound(f"Groupe inconnu dans {self.s.code} : {code!r}.", "UNKNOWN_GROUP")
            )
            return False
        return True

    def _convention(self, line: Line, ref: str) -> bool:
        if ref not in self.s.conventions:
            self.refuse(
                line,
                NotFound(
                    f"Convention inconnue dans {self.s.code} : {ref!r}.", "UNKNOWN_CONVENTION"
                ),
            )
            return False
        return True

    def references(self) -> None:
        s = self.s
        for line, caf, _o, _c in s.conventions.values():
            if caf not in self.cafs:
                self.refuse(line, NotFound(f"Caf inconnue : {caf!r}.", "UNKNOWN_CAF"))
        for line, conv, parent, _o, _c in s.groups.values():
            self._convention(line, conv)
            if parent is not None and self._group(line, parent) and s.groups[parent][1] != conv:
                self.refuse(
                    line,
                    Conflict(
                        "Un sous-groupe a la convention de son groupe parent (R-GRP-1).",
                        "SUBGROUP_CONVENTION",
                    ),
                )
        for code, (line, _conv, _parent, _o, _c) in s.groups.items():
            seen = {code}
            parent = s.groups[code][2]
            while parent is not None and parent in s.groups:
                if parent in seen:
                    self.refuse(
                        line,
                        Conflict(f"Le groupe {code} est son propre ancêtre.", "NO_PARENT_GROUP"),
                    )
                    break
                seen.add(parent)
                parent = s.groups[parent][2]
        for line, login, *_ in s.admins:
            self._user(line, login)
        for line, group, login, *_ in (*s.members, *s.managers):
            self._group(line, group)
            self._user(line, login)
        for line, login, profile, *_ in s.afas:
            if self._user(line, login):
                afas = self.catalogue.services.get("afas")
                if afas is None or profile not in afas.user_profiles:
                    self.refuse(
                        line,
                        NotFound(f"Profil Afas inconnu : {profile!r} (R-AFAS-1).", "UNKNOWN_ROLE"),
                    )

    # -- R-CON-1 -------------------------------------------------------------------------

    def subscriptions(self) -> None:
        by_pair: dict[tuple[str, str], list[tuple[Line, Window]]] = defaultdict(list)
        for line, conv, service, o, c in self.s.subscriptions:
            try:
                self.catalogue.service(service)
            except PdpError as exc:
                self.refuse(line, exc)
                continue
            if not self._convention(line, conv):
                continue
            _l, _caf, co, cc = self.s.conventions[conv]
            inside = co <= o and (cc is None or (o < cc and c is not None and c <= cc))
            if not inside:
                self.refuse(
                    line,
                    Conflict(
                        "Le bulletin d'adhésion doit être compris dans la période de la "
                        f"convention {conv} ({co.isoformat()} – {store.day(cc) or 'sans fin'}) "
                        "(R-CON-1).",
                        "OUTSIDE_CONVENTION",
                    ),
                )
            by_pair[conv, service].append((line, (o, c)))
        for (conv, service), subs in by_pair.items():
            for i, (line, window) in enumerate(subs):
                if any(_meet(window, other) for _l, other in subs[:i]):
                    self.refuse(
                        line,
                        Conflict(
                            f"Le service {service} est déjà souscrit sous la convention {conv} "
                            "sur cette période (R-CON-1).",
                            "ALREADY_SUBSCRIBED",
                        ),
                    )

    # -- R-GRP-4 -------------------------------------------------------------------------

    def roles(self) -> None:
        s = self.s
        subscribed = {(conv, service) for _l, conv, service, _o, _c in s.subscriptions}
        held: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for _l, group, service, role, _o, _c in s.roles:
            held[group].add((service, role))
        for line, group, service, role, _o, _c in s.roles:
            known = self.catalogue.services.get(service)
            if known is None or role not in known.roles:
                self.refuse(
                    line,
                    NotFound(f"Rôle inconnu pour le service {service} : {role!r}.", "UNKNOWN_ROLE"),
                )
                continue
            if not self._group(line, group):
                continue
            _gl, conv, parent, _go, _gc = s.groups[group]
            if parent is None and (conv, service) not in subscribed:
                self.refuse(
                    line,
                    Conflict(
                        f"Le service {service} n'est pas souscrit sous la convention du groupe "
                        f"{group} (R-GRP-4).",
                        "SERVICE_NOT_SUBSCRIBED",
                    ),
                )
            elif parent is not None and (service, role) not in held[parent]:
                self.refuse(
                    line,
                    Conflict(
                        f"Le sous-groupe {group} ne peut porter que des rôles de son parent "
                        f"{parent} (R-GRP-4).",
                        "SUBGROUP_ROLE_NOT_IN_PARENT",
                    ),
                )

    # -- R-ADM-1, R-ADM-3 ---------------------------------------------------------------

    def partner_admins(self) -> None:
        users = self.s.users
        admins = [a for a in self.s.admins if a[1] in users]
        for line, _login, o, _c in admins:
            if line is None:
                continue
            # On its first day, and on each later day another designation opens within it.
            days = {o} | {a[2] for a in admins if _open((o, _c), a[2])}
            for day in days:
                count = sum(
                    _open((ao, ac), day) and _open(users[al][1:], day) for _l, al, ao, ac in admins
                )
                if count > MAX_PARTNER_ADMINS:
                    self.refuse(
                        line,
                        Conflict(
                            f"{self.s.code} aurait {count} administrateurs partenaires ouverts "
                            f"le {day.isoformat()} : au plus {MAX_PARTNER_ADMINS} (R-ADM-1).",
                            "TOO_MANY_ADMINS",
                        ),
                    )
                    break

    def managers(self) -> None:
        by_group: dict[str, list[tuple[Line, str, Window]]] = defaultdict(list)
        for line, group, login, o, c in self.s.managers:
            by_group[group].append((line, login, (o, c)))
        for group, rows in by_group.items():
            for i, (line, _login, window) in enumerate(rows):
                if any(_meet(window, other) for _l, _u, other in rows[:i] + rows[i + 1 :]):
                    self.refuse(
                        line,
                        Conflict(
                            f"Le groupe {group} aurait deux responsables habilitations le même "
                            "jour : un seul à la fois (R-ADM-3).",
                            "MANAGERS_OVERLAP",
                        ),
                    )
