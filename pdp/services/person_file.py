"""A person's file (GDPR art. 15, R-CNIL-15..17): everything the store holds about one login.

One JSON document, streamed: ``PersonFile.chunks`` yields it piece by piece, reading the audit
trail and the decision log with server-side cursors (``yield_per``), so that a person with a
million logged decisions costs the same memory as one with none. Its keys, in order:

- ``login``, ``generated_at`` (UTC), ``retention_months`` (how long decisions are kept);
- ``account``: the user's record (names, email, organisation, dates, operator or not);
- ``memberships``: every membership, open or closed, each with its group and the roles that
  group carried over time (``roles``: service, role, opens_on, closes_on);
- ``afas_profiles``, ``partner_admin``, ``manages``: the other dated rights, open or closed;
- ``last_uses``: the last day each (service, role) was used (``pdp.records.last_use``);
- ``audit_by``: every administrative act made by them; ``audit_on``: every act on them (their
  account, their memberships, their rights), oldest first, as the auditors' API shows them;
- ``decisions``: every decision about them the decision log still holds (retention), oldest
  first, as logged (the log holds codes and logins, never names: R-CNIL-13).

Only operators read it through the API (reading it reads the whole decision log: ``log.read`` on
the platform, R-CNIL-15); the read is an administrative decision, logged like any other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Select, or_, select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import (
    AfasProfile,
    AuditRecord,
    DecisionRecord,
    Group,
    GroupManager,
    GroupRole,
    Membership,
    Organisation,
    PartnerAdmin,
    User,
)
from pdp.core.clock import utc_now
from pdp.core.errors import NotFound
from pdp.core.masking import Masker
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.records.audit_trail import iso_us, record_json
from pdp.records.last_use import last_uses
from pdp.services.admin.service import AdminService

MEDIA_TYPE = "application/json"
_BATCH = 1000  # rows per fetch of a cursor (server side on PostgreSQL)


def _day(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _dated(row: Any) -> dict[str, str | None]:
    return {"opens_on": _day(row.opens_on), "closes_on": _day(row.closes_on)}


class PersonFile:
    """The file of one existing login, read when iterated (``chunks``)."""

    def __init__(self, db: Engine, masker: Masker, login: str, retention_months: int) -> None:
        self.db = db
        self.masker = masker
        self.login = login
        self.retention_months = retention_months

    @property
    def filename(self) -> str:
        """The name the file is downloaded under."""
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in self.login)
        return f"person-{safe}.json"

    def chunks(self) -> Iterator[bytes]:
        """The document, as bytes, in pieces (never whole in memory)."""
        with self.db.connect() as conn:
            if conn.dialect.name == "postgresql":  # one snapshot for every part
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield from self._document(conn)

    def _document(self, conn: Connection) -> Iterator[bytes]:
        user = conn.execute(select(User).where(User.login == self.login)).one()
        head = {
            "login": self.login,
            "generated_at": utc_now().isoformat(timespec="seconds"),
            "retention_months": self.retention_months,
        }
        yield orjson.dumps(head)[:-1]  # the object stays open: its other keys follow
        yield b',"account":' + orjson.dumps(_account(conn, user))
        yield b',"memberships":' + orjson.dumps(_memberships(conn, user.id))
        for key, rows in _other_rights(conn, user.id).items():
            yield b',"' + key.encode() + b'":' + orjson.dumps(rows)
        yield b',"last_uses":' + orjson.dumps(self._last_uses(conn))
        masked = self.masker.mask_field("user", self.login)
        target = self.masker.mask_target(f"user:{self.login}")
        yield b',"audit_by":'
        yield from _array(conn, _audit(AuditRecord.actor == masked), record_json)
        yield b',"audit_on":'
        about = or_(AuditRecord.target == target, AuditRecord.related == target)
        yield from _array(conn, _audit(about), record_json)
        yield b',"decisions":'
        decisions = (
            select(DecisionRecord.ts_us, DecisionRecord.entry)
            .where(DecisionRecord.user == masked)
            .order_by(DecisionRecord.ts_us, DecisionRecord.decision_id)
        )
        yield from _array(conn, decisions, _decision)
        yield b"}\n"

    def _last_uses(self, conn: Connection) -> list[dict[str, str]]:
        found = last_uses(Session(bind=conn), [self.login], masker=self.masker)
        return [
            {"service": service, "role": role, "day": day.isoformat()}
            for (_login, service, role), day in sorted(found.items())
        ]


def _account(conn: Connection, user: Any) -> dict[str, Any]:
    organisation = None
    if user.organisation_id is not None:
        organisation = conn.execute(
            select(Organisation.code).where(Organisation.id == user.organisation_id)
        ).scalar_one()
    return {
        "login": user.login,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "organisation": organisation,
        "operator": user.is_operator,
        **_dated(user),
    }


def _memberships(conn: Connection, user_id: int) -> list[dict[str, Any]]:
    """Every membership (open or closed), with its group's roles over time."""
    rows = conn.execute(
        select(
            Membership.group_id,
            Membership.opens_on,
            Membership.closes_on,
            Group.code,
            Group.label,
            Organisation.code.label("organisation"),
        )
        .join(Group, Group.id == Membership.group_id)
        .join(Organisation, Organisation.id == Group.organisation_id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.opens_on, Membership.id)
    ).all()
    group_ids = sorted({r.group_id for r in rows})
    roles: dict[int, list[dict[str, Any]]] = {g: [] for g in group_ids}
    if group_ids:
        for role in conn.execute(
            select(GroupRole)
            .where(GroupRole.group_id.in_(group_ids))
            .order_by(GroupRole.service, GroupRole.role, GroupRole.opens_on, GroupRole.id)
        ):
            roles[role.group_id].append(
                {"service": role.service, "role": role.role, **_dated(role)}
            )
    return [
        {
            "organisation": r.organisation,
            "group": r.code,
            "label": r.label,
            **_dated(r),
            "roles": roles[r.group_id],
        }
        for r in rows
    ]


def _other_rights(conn: Connection, user_id: int) -> dict[str, list[dict[str, Any]]]:
    """Afas profiles, partner admin designations and groups managed, open or closed."""
    profiles = conn.execute(
        select(AfasProfile)
        .where(AfasProfile.user_id == user_id)
        .order_by(AfasProfile.opens_on, AfasProfile.id)
    ).all()
    admins = conn.execute(
        select(PartnerAdmin.opens_on, PartnerAdmin.closes_on, Organisation.code)
        .join(Organisation, Organisation.id == PartnerAdmin.organisation_id)
        .where(PartnerAdmin.user_id == user_id)
        .order_by(PartnerAdmin.opens_on, PartnerAdmin.id)
    ).all()
    managed = conn.execute(
        select(
            GroupManager.opens_on,
            GroupManager.closes_on,
            Group.code,
            Organisation.code.label("organisation"),
        )
        .join(Group, Group.id == GroupManager.group_id)
        .join(Organisation, Organisation.id == Group.organisation_id)
        .where(GroupManager.user_id == user_id)
        .order_by(GroupManager.opens_on, GroupManager.id)
    ).all()
    return {
        "afas_profiles": [{"profile": p.profile, **_dated(p)} for p in profiles],
        "partner_admin": [{"organisation": a.code, **_dated(a)} for a in admins],
        "manages": [
            {"organisation": m.organisation, "group": m.code, **_dated(m)} for m in managed
        ],
    }


def _audit(where: Any) -> Select[Any]:
    return select(AuditRecord).where(where).order_by(AuditRecord.seq)


def _decision(row: Any) -> Any:
    entry = orjson.loads(row.entry)
    entry["at_time"] = iso_us(row.ts_us)
    return entry


def _array(conn: Connection, query: Select[*tuple[Any, ...]], shape: Any) -> Iterator[bytes]:
    """A JSON array of the query's rows, each made by ``shape``, in batches of a cursor."""
    yield b"["
    first = True
    result = conn.execution_options(yield_per=_BATCH).execute(query)
    for rows in result.partitions():
        chunk = b",".join(orjson.dumps(shape(row)) for row in rows)
        yield chunk if first else b"," + chunk
        first = False
    yield b"]"


class PersonFiles:
    """The API's side: authorise the reader (operators: ``log.read`` on the platform, logged),
    find the login, then the file."""

    def __init__(self, db: Engine, admin: AdminService, masker: Masker, retention: int) -> None:
        self.db = db
        self.admin = admin
        self.masker = masker
        self.retention = retention

    def read(self, actor: str, login: str) -> PersonFile:
        """The file of ``login`` for ``actor``: Forbidden unless they may read the whole log
        (operators), NotFound (UNKNOWN_USER) for a login the store never held; both before
        anything of the file is read (R-CNIL-15)."""
        self.admin.require(actor, Action.LOG_READ, Target("platform"))
        return open_file(self.db, self.masker, login, self.retention)


def open_file(db: Engine, masker: Masker, login: str, retention: int) -> PersonFile:
    """The file of ``login``, unauthorised (the command line, run by whoever holds the
    database); NotFound (UNKNOWN_USER) for a login the store never held."""
    with db.connect() as conn:
        known = conn.execute(select(User.id).where(User.login == login)).first()
    if known is None:
        raise NotFound(f"Utilisateur inconnu : {login!r}.", code="UNKNOWN_USER")
    return PersonFile(db, masker, login, retention)
