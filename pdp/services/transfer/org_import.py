"""One organisation's part of an import: its stored rows read once, the file's records
compared with them in memory (identical: unchanged; a named record with other fields: updated;
anything else: added), the rules checked on the result (``checks``), then the additions
written with one multi-row INSERT per table (groups level by level, parents first).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import (
    AfasProfile,
    Convention,
    Group,
    GroupManager,
    GroupRole,
    Membership,
    Organisation,
    PartnerAdmin,
    Subscription,
    User,
)
from pdp.core.catalogue import Catalogue
from pdp.core.errors import Conflict, PdpError
from pdp.services.admin import store
from pdp.services.transfer import format as fmt
from pdp.services.transfer import stored
from pdp.services.transfer.checks import Checker, OrgState, Refusal

CHUNK = 1000
# Association records: their kind, the fields that say what they are (dates follow).
_ASSOC: dict[type[Any], tuple[str, ...]] = {
    fmt.SubscriptionRec: ("convention", "service"),
    fmt.PartnerAdminRec: ("login",),
    fmt.GroupRoleRec: ("group", "service", "role"),
    fmt.GroupManagerRec: ("group", "login"),
    fmt.MembershipRec: ("group", "login"),
    fmt.AfasProfileRec: ("login", "profile"),
}
_NAMED: dict[type[Any], tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # kind: (key field, fields that may change, fields that may not)
    fmt.ConventionRec: ("reference", ("opens_on", "closes_on"), ("caf",)),
    fmt.UserRec: ("login", ("first_name", "last_name", "email", "opens_on", "closes_on"), ()),
    fmt.GroupRec: ("code", ("label", "opens_on", "closes_on"), ("convention", "parent", "system")),
}


class OrgImport:
    """The import of one organisation's records in an open transaction (see the module)."""

    def __init__(
        self,
        session: Session,
        code: str,
        catalogue: Catalogue,
        cafs: dict[str, int | None],
        exists: bool = True,
    ) -> None:
        self.session = session
        self.code = code
        self.catalogue = catalogue
        self.cafs = cafs
        self.org = (
            session.execute(
                select(Organisation).where(Organisation.code == code)
            ).scalar_one_or_none()
            if exists
            else None
        )
        self.org_rec: fmt.OrganisationRec | None = None
        self.org_changed = False
        # Stored named rows: key → (id, {field: value}); stored associations as a multiset.
        self.named: dict[type[Any], dict[str, tuple[int, dict[str, Any]]]] = {k: {} for k in _NAMED}
        self.stored: dict[type[Any], Counter[tuple[Any, ...]]] = {k: Counter() for k in _ASSOC}
        self.matched: dict[type[Any], Counter[tuple[Any, ...]]] = {k: Counter() for k in _ASSOC}
        self.seen: dict[type[Any], set[str]] = {k: set() for k in _NAMED}
        self.new_named: dict[type[Any], dict[str, tuple[int, Any]]] = {k: {} for k in _NAMED}
        self.updates: dict[type[Any], list[tuple[int, Any]]] = {k: [] for k in _NAMED}
        self.new_assoc: dict[type[Any], list[tuple[int, Any]]] = {k: [] for k in _ASSOC}
        self.added: dict[str, int] = {}
        self.updated = 0
        self.unchanged = 0
        if self.org is not None:
            stored.load(session, self.org.id, self.named, self.stored)

    # -- Reading what is stored -------------------------------------------------------------

    # -- Comparing the file's records -------------------------------------------------------

    def prepare(self, records: list[tuple[int, fmt.Record]]) -> list[Refusal]:
        """Sort the file's records into unchanged, updated and added; the refusals found on
        the way (dates, duplicates, fields that cannot change, an unknown organisation)."""
        refused: list[Refusal] = []
        for number, rec in records:
            try:
                store.check_closing(rec.opens_on, rec.closes_on)
                self._one(number, rec)
            except PdpError as exc:
                refused.append(Refusal(number, exc.code, exc.message))
        if self.org is None and self.org_rec is None:
            refused = [
                Refusal(n, "UNKNOWN_ORGANISATION", f"Organisme inconnu : {self.code!r}.")
                for n, _ in records
            ]
        return refused

    def _count(self, kind: str) -> None:
        self.added[kind] = self.added.get(kind, 0) + 1

    def _one(self, number: int, rec: fmt.Record) -> None:
        kind = type(rec)
        if isinstance(rec, fmt.OrganisationRec):
            if self.org_rec is not None:
                raise Conflict(f"L'organisme {self.code} figure deux fois.", "DUPLICATE_RECORD")
            self.org_rec = rec
            if self.org is None:
                self._count("organisation")
            elif (self.org.name, self.org.kind, self.org.opens_on, self.org.closes_on) != (
                rec.name,
                rec.kind,
                rec.opens_on,
                rec.closes_on,
            ):
                self.org_changed = True
                self.updated += 1
            else:
                self.unchanged += 1
        elif kind in _ASSOC:
            values = tuple(getattr(rec, f) for f in (*_ASSOC[kind], "opens_on", "closes_on"))
            if self.matched[kind][values] < self.stored[kind][values]:
                self.matched[kind][values] += 1
                self.unchanged += 1
            else:
                self.new_assoc[kind].append((number, rec))
                self._count(rec.record)
        else:
            key_field, mutable, fixed = _NAMED[kind]
            key = getattr(rec, key_field)
            if key in self.seen[kind]:
                raise Conflict(f"{key} figure deux fois ({rec.record}).", "DUPLICATE_RECORD")
            self.seen[kind].add(key)
            stored = self.named[kind].get(key)
            if stored is None:
                self.new_named[kind][key] = (number, rec)
                self._count(rec.record)
                return
            _sid, fields = stored
            for f in fixed:
                if fields[f] != getattr(rec, f):
                    raise Conflict(
                        f"{rec.record} {key} : « {f} » vaut {fields[f]!r} et ne change pas "
                        "par un import.",
                        "TRANSFER_CONFLICT",
                    )
            if any(fields[f] != getattr(rec, f) for f in mutable):
                self.updates[kind].append((number, rec))
                self.updated += 1
            else:
                self.unchanged += 1

    def new_named_logins(self) -> list[str]:
        return list(self.new_named[fmt.UserRec])

    def refuse_logins(self, taken: set[str]) -> list[Refusal]:
        """LOGIN_TAKEN for each new user whose login is used elsewhere (R-USR-1)."""
        return [
            Refusal(n, "LOGIN_TAKEN", f"Identifiant déjà utilisé : {login!r}.")
            for login, (n, _rec) in self.new_named[fmt.UserRec].items()
            if login in taken
        ]

    def changes(self) -> bool:
        return bool(self.added or self.updated)

    # -- The rules ------------------------------------------------------------------------

    def check(self) -> list[Refusal]:
        """Every rule on what the organisation will hold (``checks.Checker``)."""
        state = OrgState(self.code)
        lines: dict[type[Any], dict[str, int]] = {k: {} for k in _NAMED}
        merged: dict[type[Any], dict[str, dict[str, Any]]] = {}
        for kind in _NAMED:
            merged[kind] = {k: f for k, (_id, f) in self.named[kind].items()}
            for number, rec in [*self.new_named[kind].values(), *self.updates[kind]]:
                key = getattr(rec, _NAMED[kind][0])
                merged[kind][key] = rec.model_dump()
                lines[kind][key] = number
        for ref, f in merged[fmt.ConventionRec].items():
            line = lines[fmt.ConventionRec].get(ref)
            state.conventions[ref] = (line, f["caf"], f["opens_on"], f["closes_on"])
        for login, f in merged[fmt.UserRec].items():
            state.users[login] = (lines[fmt.UserRec].get(login), f["opens_on"], f["closes_on"])
        for code, f in merged[fmt.GroupRec].items():
            state.groups[code] = (
                lines[fmt.GroupRec].get(code),
                f["convention"],
                f["parent"],
                f["opens_on"],
                f["closes_on"],
            )
        lists: dict[type[Any], list[Any]] = {
            fmt.SubscriptionRec: state.subscriptions,
            fmt.PartnerAdminRec: state.admins,
            fmt.GroupRoleRec: state.roles,
            fmt.GroupManagerRec: state.managers,
            fmt.MembershipRec: state.members,
            fmt.AfasProfileRec: state.afas,
        }
        for kind, target in lists.items():
            for values, n in self.stored[kind].items():
                target.extend([(None, *values)] * n)
            for n, rec in self.new_assoc[kind]:
                target.append(
                    (n, *(getattr(rec, f) for f in (*_ASSOC[kind], "opens_on", "closes_on")))
                )
        return Checker(state, self.catalogue, set(self.cafs)).run()

    # -- Writing --------------------------------------------------------------------------

    def write(self) -> int:
        """Write the additions and updates; return the organisation's id."""
        s = self.session
        rec = self.org_rec
        if self.org is None:
            assert rec is not None
            org_id = int(
                s.execute(
                    insert(Organisation).returning(Organisation.id),
                    [
                        {
                            "code": self.code,
                            "name": rec.name,
                            "kind": rec.kind,
                            **_dates(rec.opens_on, rec.closes_on),
                        }
                    ],
                ).scalar_one()
            )
        else:
            org_id = self.org.id
            if self.org_changed and rec is not None:
                s.execute(
                    update(Organisation)
                    .where(Organisation.id == org_id)
                    .values(name=rec.name, kind=rec.kind, **_dates(rec.opens_on, rec.closes_on))
                )
        convs = {k: v[0] for k, v in self.named[fmt.ConventionRec].items()}
        convs.update(
            self._insert(
                Convention,
                Convention.reference,
                fmt.ConventionRec,
                lambda r: {
                    "organisation_id": org_id,
                    "caf_id": self.cafs[r.caf],
                    "reference": r.reference,
                },
            )
        )
        users = {k: v[0] for k, v in self.named[fmt.UserRec].items()}
        users.update(
            self._insert(
                User,
                User.login,
                fmt.UserRec,
                lambda r: {
                    "organisation_id": org_id,
                    "login": r.login,
                    "first_name": r.first_name,
                    "last_name": r.last_name,
                    "email": r.email,
                    "is_operator": False,
                },
            )
        )
        groups = {k: v[0] for k, v in self.named[fmt.GroupRec].items()}
        new_groups = [r for _n, r in self.new_named[fmt.GroupRec].values()]
        if new_groups:  # one INSERT, then the new parents in one executemany UPDATE
            rows = [
                {
                    "organisation_id": org_id,
                    "convention_id": convs[r.convention],
                    "parent_id": groups.get(r.parent) if r.parent is not None else None,
                    "code": r.code,
                    "label": r.label,
                    "is_system": r.system,
                    **_dates(r.opens_on, r.closes_on),
                }
                for r in new_groups
            ]
            table = _table(Group)
            added = dict(
                (code, gid)
                for gid, code in s.execute(insert(table).returning(table.c.id, table.c.code), rows)
            )
            parents = [
                {"id": added[r.code], "parent_id": added[r.parent]}
                for r in new_groups
                if r.parent is not None and r.parent in added
            ]
            groups.update(added)
            if parents:
                s.execute(update(Group), parents)
        edits: list[tuple[type[Any], Any, Callable[[Any], dict[str, Any]]]] = [
            (fmt.ConventionRec, Convention, lambda r: {}),
            (
                fmt.UserRec,
                User,
                lambda r: {"first_name": r.first_name, "last_name": r.last_name, "email": r.email},
            ),
            (fmt.GroupRec, Group, lambda r: {"label": r.label}),
        ]
        for kind, model, extra in edits:
            ids_of: dict[type[Any], dict[str, int]] = {
                fmt.ConventionRec: convs,
                fmt.UserRec: users,
                fmt.GroupRec: groups,
            }
            ids = ids_of[kind]
            key = _NAMED[kind][0]
            rows = [
                {"id": ids[getattr(r, key)], **extra(r), **_dates(r.opens_on, r.closes_on)}
                for _n, r in self.updates[kind]
            ]
            if rows:
                s.execute(update(model), rows)
        self._insert_assoc(
            fmt.SubscriptionRec,
            Subscription,
            lambda r: {"convention_id": convs[r.convention], "service": r.service},
        )
        self._insert_assoc(
            fmt.PartnerAdminRec,
            PartnerAdmin,
            lambda r: {"organisation_id": org_id, "user_id": users[r.login]},
        )
        self._insert_assoc(
            fmt.GroupRoleRec,
            GroupRole,
            lambda r: {"group_id": groups[r.group], "service": r.service, "role": r.role},
        )
        self._insert_assoc(
            fmt.GroupManagerRec,
            GroupManager,
            lambda r: {"group_id": groups[r.group], "user_id": users[r.login]},
        )
        self._insert_assoc(
            fmt.MembershipRec,
            Membership,
            lambda r: {"group_id": groups[r.group], "user_id": users[r.login]},
        )
        self._insert_assoc(
            fmt.AfasProfileRec,
            AfasProfile,
            lambda r: {"user_id": users[r.login], "profile": r.profile},
        )
        return org_id

    def _insert(self, model: Any, key: Any, kind: type[Any], row: Any) -> dict[str, int]:
        recs = [r for _n, r in self.new_named[kind].values()]
        if not recs:
            return {}
        rows = [{**row(r), **_dates(r.opens_on, r.closes_on)} for r in recs]
        table = _table(model)
        returning = insert(table).returning(table.c.id, table.c[key.key])
        return {k: i for i, k in self.session.execute(returning, rows)}

    def _insert_assoc(self, kind: type[Any], model: Any, row: Any) -> None:
        rows = [{**row(r), **_dates(r.opens_on, r.closes_on)} for _n, r in self.new_assoc[kind]]
        if rows:
            # RETURNING makes SQLAlchemy send multi-row VALUES (1,000 rows a statement) rather
            # than one INSERT a row: far less work for the server.
            table = _table(model)
            self.session.execute(insert(table).returning(table.c.id), rows).all()


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def _dates(opens_on: dt.date, closes_on: dt.date | None) -> dict[str, Any]:
    return {"opens_on": opens_on, "closes_on": closes_on}
