"""Transfer lines into the store (docs/transfer-format.md).

The file is read as a stream: the header, then the Cafs and operators (one transaction, the
network), then each organisation's records, which lie together (one transaction per
organisation). A record identical to a stored one changes nothing, so importing a file twice
changes nothing the second time; a named record (Caf, operator, organisation, convention, user,
group) whose other fields differ updates the stored one; the import never deletes nor closes.

Every line is checked (its fields as the API checks them, then the organisation's rules on what
it will hold, ``checks``); a refused line is reported with its number, code and French message
and leaves its whole organisation (or the network) untouched. Each transaction that writes
takes a policy revision and appends an audit record naming the actor and the file's SHA-256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from pdp.adapters.sql.database import UnitOfWork, lock_revision
from pdp.adapters.sql.models import Caf, Organisation, User
from pdp.core.catalogue import Catalogue
from pdp.core.errors import BadRequest, Conflict, PdpError
from pdp.records.audit_trail import AuditChain, AuditEvent, now
from pdp.records.policy_write import begin, finish
from pdp.services.admin import store
from pdp.services.transfer import format as fmt
from pdp.services.transfer.checks import Refusal
from pdp.services.transfer.org_import import OrgImport

ACTION = "transfer.import"
REASON = "transfer import"


def file_digest(path: Path) -> str:
    """The SHA-256 of the file, hex (what the audit records name)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ImportReport:
    """What an import did (or, with ``dry_run``, would do)."""

    digest: str
    dry_run: bool
    lines: int = 0
    written: list[str] = field(default_factory=list)  # organisations (and "network") written
    unchanged: int = 0
    added: dict[str, int] = field(default_factory=dict)
    updated: int = 0
    refused: list[Refusal] = field(default_factory=list)
    untouched: list[str] = field(default_factory=list)  # organisations left as they were

    def count(self, added: dict[str, int], updated: int, unchanged: int) -> None:
        for kind, n in added.items():
            self.added[kind] = self.added.get(kind, 0) + n
        self.updated += updated
        self.unchanged += unchanged

    def as_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.digest,
            "dry_run": self.dry_run,
            "lines": self.lines,
            "written": len(self.written),
            "unchanged": self.unchanged,
            "added": dict(sorted(self.added.items())),
            "updated": self.updated,
            "refused": [r.__dict__ for r in self.refused],
            "untouched": self.untouched,
        }


class _Skip(Exception):
    """Leave the transaction without writing (refused lines, dry run, nothing to do)."""


def _invalid(line: int, exc: ValidationError | ValueError) -> Refusal:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return Refusal(line, "VALIDATION_ERROR", f"ligne invalide : {where} : {first['msg']}")
    return Refusal(line, "VALIDATION_ERROR", f"ligne invalide : {exc}")


def _organisation_of(raw: bytes) -> str | None:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    org = value.get("organisation") if isinstance(value, dict) else None
    return org if isinstance(org, str) else None


class Importer:
    """Imports one file (see the module)."""

    def __init__(
        self,
        uow: UnitOfWork,
        chain: AuditChain,
        catalogue: Catalogue,
        actor: str,
        digest: str,
        *,
        dry_run: bool = False,
    ) -> None:
        self.uow = uow
        self.chain = chain
        self.catalogue = catalogue
        self.actor = actor
        self.report = ImportReport(digest, dry_run)
        self.cafs: dict[str, int | None] = {}
        # Read once when the first organisation comes (R-USR-1: a login is unique across the
        # portal); the unique constraints stay the last word against concurrent writers.
        self.org_codes: set[str] = set()
        self.logins: set[str] = set()
        self._pending_operators: list[tuple[int, fmt.OperatorRec]] = []

    def run(self, source: BinaryIO) -> ImportReport:
        """Read ``source`` to its end; raise BadRequest(TRANSFER_FORMAT) for a missing or
        unknown header (nothing is then written)."""
        lines = enumerate(source, start=1)
        first = next(lines, None)
        try:
            if first is None:
                raise ValueError("fichier vide")
            fmt.parse_header(first[1])
        except (ValidationError, ValueError) as exc:
            raise BadRequest(
                f"Ligne 1 : l'en-tête « {fmt.FORMAT} » version {fmt.VERSION} est attendu "
                f"({exc.__class__.__name__}).",
                code="TRANSFER_FORMAT",
            ) from None
        self.report.lines = 1
        network: list[tuple[int, fmt.Record]] = []
        network_bad: list[Refusal] = []
        current: str | None = None
        bucket: list[tuple[int, fmt.Record]] = []
        bad: list[Refusal] = []
        done: set[str] = set()
        in_orgs = False
        for number, raw in self._records(lines):
            rec: fmt.Record | None = None
            refusal: Refusal | None = None
            try:
                rec = fmt.parse(raw)
                org_code: str | None = getattr(rec, "organisation", None)
            except ValidationError as exc:
                org_code = _organisation_of(raw)
                refusal = _invalid(number, exc)
                if org_code is None and not in_orgs:
                    network_bad.append(refusal)  # the network is then left as it was
                    continue
                if org_code is None or org_code in done:
                    self.report.refused.append(refusal)
                    continue
            if org_code is None:
                if in_orgs:
                    self.report.refused.append(
                        Refusal(
                            number,
                            "TRANSFER_ORDER",
                            "Les Cafs et les opérateurs précèdent les organismes.",
                        )
                    )
                elif rec is not None:
                    network.append((number, rec))
                continue
            if not in_orgs:
                in_orgs = True
                self._network(network, network_bad)
                self._known()
            if org_code != current:
                if current is not None:
                    self._organisation(current, bucket, bad)
                    done.add(current)
                if org_code in done:
                    self.report.refused.append(
                        Refusal(
                            number,
                            "TRANSFER_ORDER",
                            f"Les lignes de l'organisme {org_code} doivent se suivre.",
                        )
                    )
                    continue
                current, bucket, bad = org_code, [], []
            if refusal is not None:
                bad.append(refusal)
            elif rec is not None:
                bucket.append((number, rec))
        if not in_orgs:
            self._network(network, network_bad)
        if current is not None:
            self._organisation(current, bucket, bad)
        self.report.refused.sort(key=lambda r: r.line)
        return self.report

    def _records(self, lines: Iterable[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
        for number, raw in lines:
            self.report.lines = number
            if raw.strip():
                yield number, raw

    def _known(self) -> None:
        with self.uow.begin() as session:
            self.org_codes = set(session.execute(select(Organisation.code)).scalars())
            self.logins = set(session.execute(select(User.login)).scalars())
        for _n, rec in self._pending_operators:
            self.logins.add(rec.login)

    # -- The network: Cafs and operators ----------------------------------------------------

    def _network(self, records: list[tuple[int, fmt.Record]], bad: list[Refusal]) -> None:
        refused: list[Refusal] = list(bad)
        try:
            with self.uow.begin() as session:
                lock_revision(session)
                stored_cafs = {r.code: r for r in session.execute(select(Caf)).scalars()}
                self.cafs = {code: caf.id for code, caf in stored_cafs.items()}
                cafs: list[tuple[int, fmt.CafRec | fmt.OperatorRec]] = [
                    (n, r) for n, r in records if isinstance(r, fmt.CafRec)
                ]
                ops: list[tuple[int, fmt.CafRec | fmt.OperatorRec]] = [
                    (n, r) for n, r in records if isinstance(r, fmt.OperatorRec)
                ]
                self._pending_operators = [(n, r) for n, r in ops if isinstance(r, fmt.OperatorRec)]
                logins = [r.login for _, r in self._pending_operators]
                stored_ops = (
                    {
                        u.login: u
                        for u in session.execute(
                            select(User).where(User.login.in_(logins))
                        ).scalars()
                    }
                    if logins
                    else {}
                )
                added: dict[str, int] = {}
                updated = unchanged = 0
                seen: set[tuple[str, str]] = set()
                for number, rec in [*cafs, *ops]:
                    key = rec.code if isinstance(rec, fmt.CafRec) else rec.login
                    row: Any = (
                        stored_cafs.get(key) if isinstance(rec, fmt.CafRec) else stored_ops.get(key)
                    )
                    try:
                        store.check_closing(rec.opens_on, rec.closes_on)
                        if (rec.record, key) in seen:
                            raise Conflict(f"{key} figure deux fois.", code="DUPLICATE_RECORD")
                        seen.add((rec.record, key))
                        if (
                            isinstance(rec, fmt.OperatorRec)
                            and row is not None
                            and (row.organisation_id is not None)
                        ):
                            raise Conflict(f"Identifiant déjà utilisé : {key!r}.", "LOGIN_TAKEN")
                    except PdpError as exc:
                        refused.append(Refusal(number, exc.code, exc.message))
                        continue
                    values = rec.model_dump(exclude={"record"})
                    if row is None:
                        if isinstance(rec, fmt.CafRec):
                            self.cafs[key] = None
                            session.add(Caf(**values))
                        else:
                            session.add(User(**values, organisation_id=None, is_operator=True))
                        added[rec.record] = added.get(rec.record, 0) + 1
                    elif any(getattr(row, k) != v for k, v in values.items()):
                        for k, v in values.items():
                            setattr(row, k, v)
                        updated += 1
                    else:
                        unchanged += 1
                if refused:  # the organisations see only the Cafs stored
                    self.cafs = {code: caf.id for code, caf in stored_cafs.items()}
                    self._pending_operators = []
                    self.report.untouched.append("network")
                    raise _Skip
                self.report.count(added, updated, unchanged)
                if self.report.dry_run or not (added or updated):
                    raise _Skip
                write = begin(session)
                session.flush()
                self.cafs = {c.code: c.id for c in session.execute(select(Caf)).scalars()}
                write.changed(None)
                write.record(self._event(write.revision, "network", None, added, updated))
                finish(write, self.chain, REASON)
                self.report.written.append("network")
        except _Skip:
            pass
        self.report.refused.extend(refused)

    def _event(
        self, revision: int, target: str, org: str | None, added: dict[str, int], updated: int
    ) -> AuditEvent:
        after = {"file_sha256": self.report.digest, "added": added, "updated": updated}
        return AuditEvent(self.actor, ACTION, target, org, None, after, revision, now())

    # -- One organisation ------------------------------------------------------------------

    def _organisation(
        self, code: str, records: list[tuple[int, fmt.Record]], bad: list[Refusal]
    ) -> None:
        refused: list[Refusal] = list(bad)
        try:
            with self.uow.begin() as session:
                # The revision row's lock first: what is read next is the latest state. (A dry
                # run only locks; a write that ends up changing nothing is rolled back.)
                write = None if self.report.dry_run else begin(session)
                if write is None:
                    lock_revision(session)
                elif session.get_bind().dialect.name == "postgresql":
                    # Atomic but not waiting for the disk: a crash may lose the last
                    # organisations committed, which importing the file again restores.
                    session.execute(text("SET LOCAL synchronous_commit TO OFF"))
                work = OrgImport(session, code, self.catalogue, self.cafs, code in self.org_codes)
                refused.extend(work.prepare(records))
                if not refused:
                    refused.extend(work.refuse_logins(self.logins))
                if not refused:
                    refused.extend(work.check())
                if refused:
                    self.report.untouched.append(code)
                    raise _Skip
                self.report.count(work.added, work.updated, work.unchanged)
                if write is None or not work.changes():
                    self._seen(work)
                    raise _Skip
                org_id = work.write()
                write.changed(org_id)
                target = f"organisation:{code}"
                write.record(self._event(write.revision, target, code, work.added, work.updated))
                finish(write, self.chain, REASON)
            self._seen(work)
            self.report.written.append(code)
        except _Skip:
            pass
        except IntegrityError:  # a concurrent write took a login or the code meanwhile
            first = records[0][0] if records else 0
            refused.append(
                Refusal(
                    first,
                    "WRITE_CONFLICT",
                    f"L'organisme {code} a changé pendant l'import : rien n'est écrit, "
                    "relancer l'import.",
                )
            )
            self.report.untouched.append(code)
        self.report.refused.extend(refused)

    def _seen(self, work: OrgImport) -> None:
        """What later organisations must see as taken: this one's code and new logins."""
        self.org_codes.add(work.code)
        self.logins.update(work.new_named_logins())
