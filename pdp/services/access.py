"""Who may use what, as a document (R-ADM-8): every user's computed rights on one day.

One row per (user, service, role, Caf, grant): the organisation, the login, the service and
role, a Caf the service is open for, and what grants it: a group (``source`` "group") or an Afas
profile (``source`` "afas_profile", no group). The rows come from the engine's own listing
(``pdp.engine.index.Index.permissions``, the welcome page's R-DEC-4), so the document says
exactly what checks answer: ``check(login, service, role, caf, at)`` is allowed, with that grant
among its grant paths, for every row, and denied for anything no row names.

Constant memory: the rows are produced organisation by organisation, user by user, from one
index (an index is replaced, never changed: a document is consistent at one revision even if
the engine refreshes meanwhile), and serialised in chunks of about ``CHUNK_BYTES``; no list of
the whole result is ever made. Two formats, one column order (``COLUMNS``): CSV with a header
line, and JSON Lines (one object a line, keys in that order).

Who may read it: ``access.read`` (operators; the organisation's partner admins), decided and
logged like every administrative read (R-ADM-7): the decision log holds who read which
organisation's document, allowed or refused. The command line (``pdp access export``) reads the
store directly, like ``pdp logs export``, and is not logged.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import orjson

from pdp.core.errors import BadRequest, NotFound, Unavailable
from pdp.engine.actions import Action
from pdp.engine.decision import MESSAGES, Reason
from pdp.engine.entries import OrgPartition
from pdp.engine.index import Index
from pdp.engine.policy import PolicyEngine
from pdp.engine.rules import Target
from pdp.services.admin.service import AdminService
from pdp.services.decisions import DecisionService

COLUMNS = ("organisation", "login", "service", "role", "caf", "source", "group", "at")
# Format name -> media type. "json" (the API's name) and "jsonl" (the command line's) are the
# same JSON Lines.
MEDIA_TYPES = {
    "json": "application/x-ndjson",
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
}
CHUNK_BYTES = 64 * 1024  # what one chunk of the answer holds, at most about


class Writer(Protocol):
    """Where a document is written: a binary file, standard output, a socket's writer."""

    def write(self, chunk: bytes, /) -> object:
        """Write ``chunk``."""


class AccessRow(NamedTuple):
    """One right of one user on the day; ``group`` is None for an Afas profile."""

    organisation: str
    login: str
    service: str
    role: str
    caf: str
    source: str
    group: str | None
    at: str


def user_rows(index: Index, organisation: str, login: str, day: int) -> list[AccessRow]:
    """One user's rows on day ordinal ``day``, sorted by service, role, Caf, source, group (a
    grant held twice over the day, by two memberships of one group, is one row)."""
    at = dt.date.fromordinal(day).isoformat()
    found = {
        (service, grant.role, caf, grant.source, grant.group or "")
        for service, (grants, cafs) in index.permissions(login, day).items()
        for grant in grants
        for caf in cafs
    }
    return [
        AccessRow(organisation, login, service, role, caf, source, group or None, at)
        for service, role, caf, source, group in sorted(found)
    ]


def access_rows(
    index: Index, organisations: Iterable[OrgPartition], day: int
) -> Iterator[AccessRow]:
    """Every row of the organisations, in their order, each by login."""
    for org in organisations:
        for login in org.logins:
            yield from user_rows(index, org.code, login, day)


@dataclass(frozen=True)
class AccessDocument:
    """The document of some organisations (all of them: ``organisations`` None) on one day,
    at the revision of ``index``. Its rows are made as they are read, never before."""

    index: Index
    organisations: tuple[OrgPartition, ...] | None
    day: dt.date

    @property
    def revision(self) -> int:
        """The policy revision the document reflects."""
        return self.index.revision

    def rows(self) -> Iterator[AccessRow]:
        """The rows, organisation by organisation (by code), user by user (by login)."""
        orgs = self.organisations if self.organisations is not None else self.index.sorted_orgs()
        return access_rows(self.index, orgs, self.day.toordinal())

    def chunks(self, fmt: str) -> Iterator[bytes]:
        """The document in ``fmt`` ("csv", "json" or "jsonl"), in chunks of about
        ``CHUNK_BYTES``; the CSV begins with its header line. Raises BadRequest
        (UNKNOWN_FORMAT) for any other format, before any row is made."""
        return _chunks(self.rows(), fmt)

    def write(self, out: Writer, fmt: str) -> int:
        """Write the document in ``fmt`` to ``out``; return how many rows it holds."""
        rows = _Counted(self.rows())
        for chunk in _chunks(rows, fmt):
            out.write(chunk)
        return rows.count


class _Counted:
    """The rows, counted as they go by (no second pass, no list)."""

    def __init__(self, rows: Iterator[AccessRow]) -> None:
        self.rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[AccessRow]:
        for row in self.rows:
            self.count += 1
            yield row


def _chunks(rows: Iterable[AccessRow], fmt: str) -> Iterator[bytes]:
    if fmt == "csv":
        return _csv_chunks(rows)
    if fmt in ("json", "jsonl"):
        return _jsonl_chunks(rows)
    raise BadRequest(f"Format inconnu : {fmt!r} (csv, json ou jsonl).", code="UNKNOWN_FORMAT")


class _Buffer:
    """The bytes of the chunk being made: each line is encoded into it as soon as it is made,
    so no line outlives its copy here (orjson's and StringIO's own buffers are larger than the
    lines they hold)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, text: str) -> None:
        """Add ``text`` (the csv module's writer writes one row at a time)."""
        self.data += text.encode()

    def take(self) -> bytes:
        """The chunk made so far; the buffer starts again empty."""
        chunk = bytes(self.data)
        self.data.clear()
        return chunk


def _csv_chunks(rows: Iterable[AccessRow]) -> Iterator[bytes]:
    buffer = _Buffer()
    writer = csv.writer(buffer)  # RFC 4180: comma, double quotes when needed, CRLF
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(row)
        if len(buffer.data) >= CHUNK_BYTES:
            yield buffer.take()
    yield buffer.take()


def _jsonl_chunks(rows: Iterable[AccessRow]) -> Iterator[bytes]:
    buffer = bytearray()
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    for row in rows:
        buffer += dumps(dict(zip(COLUMNS, row, strict=True)), option=newline)
        if len(buffer) >= CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def document(engine: PolicyEngine, organisation: str | None, at: dt.date | None) -> AccessDocument:
    """The document of ``organisation`` (None: the whole nation) on ``at`` (None: today), from
    the engine's index brought up to date. Raises NotFound (UNKNOWN_ORGANISATION), and
    Unavailable when the engine's rules are too old to list rights."""
    engine.refresh()
    if engine.stale:
        raise Unavailable(MESSAGES[Reason.POLICY_UNAVAILABLE])
    index = engine.index
    orgs: tuple[OrgPartition, ...] | None = None
    if organisation is not None:
        org = index.org_by_code.get(organisation)
        if org is None:
            raise NotFound(f"Organisme inconnu : {organisation!r}.", code="UNKNOWN_ORGANISATION")
        orgs = (org,)
    return AccessDocument(index, orgs, engine.day(at))


class AccessDocuments:
    """The API's side: authorise the reader (``access.read``, logged), then the document."""

    def __init__(self, admin: AdminService, decisions: DecisionService) -> None:
        self.admin = admin
        self.decisions = decisions

    def read(
        self,
        actor: str,
        organisation: str,
        at: dt.date | None,
        min_revision: int | None = None,
        wait_s: float = 0.0,
    ) -> AccessDocument:
        """The organisation's document for ``actor``: Forbidden (the engine's reason) unless
        they may read it, NotFound (UNKNOWN_ORGANISATION) for an organisation that does not
        exist, whoever asks; both before anything is read. With ``min_revision``, from that
        revision or a later one (read-your-writes, as ``DecisionService.at_least``)."""
        self.admin.require(actor, Action.ACCESS_READ, Target("organisation", organisation))
        self.decisions.at_least(min_revision, wait_s)
        return document(self.admin.engine, organisation, at)
