"""A partner's CSV of users and their groups (fiches 1 and 4 in bulk), previewed, then applied
as one write.

The file has a header line naming its columns, ``login``, ``first_name``, ``last_name``,
``email`` and ``groups`` (group codes separated by ``;``), and may add ``opens_on``
(YYYY-MM-DD); comma or semicolon separated, UTF-8. Each line either creates the user (R-USR-1,
R-USR-2) and attaches them to the groups (R-MEM-1), or, for a user already in the organisation,
attaches them to the groups they are not in yet; nothing else changes (names are not updated,
nothing is detached). Every line is checked as the API checks it, with the actor's rights:
creating a user needs ``user.create`` on the organisation, attaching needs
``group.members.edit`` on the group (a manager, within their perimeter: R-ADM-4).

The preview runs the whole import in the write's transaction, each line in its own savepoint,
and rolls everything back: what it reports is what applying would do. Applying commits only if
no line is refused (409 IMPORT_REFUSED otherwise, with the report): one write, one revision,
all or nothing.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from pdp.adapters.sql.models import Group, Membership, Organisation, User
from pdp.core.errors import BadRequest, Conflict, PdpError
from pdp.core.fields import Day
from pdp.core.text import CODE_PATTERN
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.services.admin import store
from pdp.services.admin.requests import NewUser
from pdp.services.admin.service import AdminService, Tx
from pdp.services.admin.users import attach_in, create_user_in

COLUMNS = ("login", "first_name", "last_name", "email", "groups")
OPTIONAL = ("opens_on",)
MAX_LINES = 5000
_CODE = re.compile(CODE_PATTERN)


class ImportLine(BaseModel):
    """What one line does (``create``, ``attach``, ``unchanged``) or why it is ``refused``."""

    line: int
    login: str
    outcome: Literal["create", "attach", "unchanged", "refused"]
    groups: list[str]
    code: str | None = None
    message: str | None = None


class ImportReport(BaseModel):
    """The import's lines; ``applied`` with the ``revision`` it took, or a preview."""

    organisation: str
    applied: bool
    revision: int | None
    created: int
    attached: int
    refused: int
    lines: list[ImportLine]


class _Day(BaseModel):
    day: Day


@dataclass
class _Row:
    line: int
    login: str
    user: NewUser | None
    groups: list[str]
    problem: PdpError | None = None


class _Rollback(Exception):
    def __init__(self, report: ImportReport) -> None:
        super().__init__("rolled back")
        self.report = report


def import_users(
    svc: AdminService, actor: str, org_code: str, text: str, *, apply: bool
) -> ImportReport:
    """Preview (``apply`` False) or apply a CSV of users (see the module). Raises BadRequest
    for a file that cannot be read (IMPORT_FORMAT), Conflict(IMPORT_REFUSED, the report in its
    details) when applying a file with refused lines."""
    rows = _parse(text)
    try:
        with svc.write(actor, Action.USER_CREATE, Target("organisation", org_code)) as tx:
            org = store.organisation(tx.session, org_code)
            lines = [_run(tx, org, row) for row in rows]
            report = _report(org.code, lines, applied=False, revision=None)
            if not apply or report.refused:
                raise _Rollback(report)
    except _Rollback as undone:
        if apply:
            raise Conflict(
                f"{undone.report.refused} ligne(s) refusée(s) : rien n'a été importé.",
                code="IMPORT_REFUSED",
                details=undone.report.model_dump(mode="json"),
            ) from None
        return undone.report
    return _report(org.code, lines, applied=True, revision=tx.revision)


def _report(
    org: str, lines: list[ImportLine], *, applied: bool, revision: int | None
) -> ImportReport:
    return ImportReport(
        organisation=org,
        applied=applied,
        revision=revision,
        created=sum(1 for x in lines if x.outcome == "create"),
        attached=sum(len(x.groups) for x in lines if x.outcome in ("create", "attach")),
        refused=sum(1 for x in lines if x.outcome == "refused"),
        lines=lines,
    )


def _parse(text: str) -> list[_Row]:
    """The file's lines (line numbers as an editor counts them, the header being line 1)."""
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    # newline="": the csv module reads line ends itself (a lone CR inside a field is text).
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return _rows(reader)
    except csv.Error as exc:  # a malformed file is the caller's error, never a 500
        raise BadRequest(
            f"Fichier CSV illisible, ligne {reader.line_num} : {exc}.", code="IMPORT_FORMAT"
        ) from None


def _rows(reader: csv.DictReader[str]) -> list[_Row]:
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [h for h in header if h not in COLUMNS + OPTIONAL]
    if missing or unknown:
        raise BadRequest(
            f"En-tête attendu : {', '.join(COLUMNS)} (et, au choix, {', '.join(OPTIONAL)}) ; "
            f"manquant : {', '.join(missing) or 'rien'}, inconnu : {', '.join(unknown) or 'rien'}.",
            code="IMPORT_FORMAT",
        )
    reader.fieldnames = header
    rows: list[_Row] = []
    for record in reader:
        if len(rows) >= MAX_LINES:
            raise BadRequest(f"Au plus {MAX_LINES} lignes par fichier.", code="IMPORT_FORMAT")
        rows.append(_row(reader.line_num, record))
    if not rows:
        raise BadRequest("Le fichier ne contient aucune ligne.", code="IMPORT_FORMAT")
    return rows


def _row(line: int, record: dict[str, str | None]) -> _Row:
    values = {k: (v or "").strip() for k, v in record.items() if k is not None}
    login = values.get("login", "")
    if None in record:
        return _Row(line, login, None, [], BadRequest("Trop de colonnes.", "IMPORT_FORMAT"))
    groups = [g.strip() for g in values.get("groups", "").split(";") if g.strip()]
    bad = [g for g in groups if not _CODE.match(g) or len(g) > 64]
    if bad:
        return _Row(
            line,
            login,
            None,
            groups,
            BadRequest(f"Code de groupe invalide : {bad[0]!r}.", "VALIDATION_ERROR"),
        )
    try:
        opens_on = _Day(day=values["opens_on"]).day if values.get("opens_on") else None
        user = NewUser(
            login=login,
            first_name=values.get("first_name", ""),
            last_name=values.get("last_name", ""),
            email=values.get("email", ""),
            opens_on=opens_on,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"] if p != "day") or "opens_on"
        problem = BadRequest(f"{field} : {first['msg']}.", code="VALIDATION_ERROR")
        return _Row(line, login, None, groups, problem)
    return _Row(line, login, user, groups)


def _run(tx: Tx, org: Organisation, row: _Row) -> ImportLine:
    """One line in its own savepoint: done, or undone with the reason."""
    if row.problem is not None or row.user is None:
        problem = row.problem or BadRequest("Ligne illisible.", "IMPORT_FORMAT")
        return _refused(row, problem)
    events = len(tx.write.events)
    savepoint = tx.session.begin_nested()
    try:
        outcome = _apply(tx, org, row.user, row.groups)
    except PdpError as exc:
        savepoint.rollback()
        del tx.write.events[events:]
        return _refused(row, exc)
    savepoint.commit()
    return ImportLine(line=row.line, login=row.login, outcome=outcome[0], groups=outcome[1])


def _refused(row: _Row, problem: PdpError) -> ImportLine:
    return ImportLine(
        line=row.line,
        login=row.login,
        outcome="refused",
        groups=row.groups,
        code=problem.code,
        message=problem.message,
    )


def _apply(
    tx: Tx, org: Organisation, data: NewUser, codes: list[str]
) -> tuple[Literal["create", "attach", "unchanged"], list[str]]:
    user = tx.session.execute(select(User).where(User.login == data.login)).scalar_one_or_none()
    created = user is None
    if user is None:
        user = create_user_in(tx, org, data)
    elif user.organisation_id != org.id:
        raise Conflict(
            f"L'identifiant {data.login!r} est déjà utilisé sur le portail (R-USR-1).",
            code="LOGIN_TAKEN",
        )
    attached: list[str] = []
    for code in codes:
        grp: Group = store.group(tx.session, org, code)
        tx.authorise(Action.GROUP_MEMBERS_EDIT, Target("group", org.code, code))
        if not created and user.id in _members_today(tx, grp):
            continue
        attach_in(tx, org, user, grp, data.opens_on if created else None, None)
        attached.append(code)
    if created:
        return "create", attached
    return ("attach" if attached else "unchanged"), attached


def _members_today(tx: Tx, grp: Group) -> set[int]:
    rows = tx.session.execute(
        select(Membership.user_id).where(
            Membership.group_id == grp.id,
            Membership.opens_on <= tx.today,
            Membership.closes_on.is_(None) | (Membership.closes_on > tx.today),
        )
    ).scalars()
    return set(rows)
