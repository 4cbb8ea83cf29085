"""The audit trail as a hash chain (R-ADM-7: every administrative action is recorded).

What is proved here, on SQLite and PostgreSQL:

- the chain is intact after the demo load and after administrative writes through the API;
- ``AuditChain.verify`` (and ``pdp audit verify``) detects an edited record, a deleted record,
  an inserted record and records cut off the end, naming the first broken one;
- with ``PDP_AUDIT_KEY``, a forger who recomputes plain SHA-256 hashes is caught (and without a
  key the very same forgery passes: the key is what makes the difference);
- each write's records carry its revision, actor and ``X-Request-Id``; a refused write leaves no
  record, and a write that fails half-way leaves neither its change nor a record;
- emails are masked in the records.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import sessionmaker

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import AuditRecord, PolicyRevision, User
from pdp.cli import cli
from pdp.core.masking import Masker
from pdp.records.audit_trail import (
    GENESIS,
    AuditChain,
    AuditEvent,
    AuditReader,
    head_seq,
    iter_records,
    record_digest,
)
from pdp.services.demo import DEMO_ACTOR, load_demo
from pdp.web.app import create_app
from pdp.web.container import services

from support.actors import Api
from support.audit import KEY, reset_audit_head, some_writes, tamper
from support.constants import CONVENTION, MAIRIE, SECRET, MakeApp

_HASHED = (
    "seq",
    "ts_us",
    "actor",
    "action",
    "target",
    "related",
    "organisation",
    "before",
    "after",
    "revision",
    "request_id",
    "prev_hash",
)


@pytest.fixture(autouse=True)
def _fresh_audit_head(request: pytest.FixtureRequest, backend: str) -> None:
    """Work around ``support.databases.reset_postgres``, which empties ``audit_log`` but leaves
    the chain's head (``policy_revision.audit_seq/audit_hash``) of the previous test: the demo
    would then be chained after a record that no longer exists. Autouse, so it runs before
    ``demo_db``/``db_url`` load anything."""
    if backend == "postgres":
        reset_audit_head(request.getfixturevalue("postgres_database"))


@pytest.fixture
def app(make_app: MakeApp) -> Flask:
    """The app over a private copy of the demo (unkeyed chain)."""
    return make_app(jwt_secret=SECRET)[0]


@pytest.fixture
def db(app: Flask) -> Engine:
    engine: Engine = services(app).db
    return engine


@pytest.fixture
def admin(app: Flask) -> Api:
    return Api(app.test_client())


def records(db: Engine) -> list[dict[str, Any]]:
    """Every stored record, raw (the hashed columns and the hash), by seq."""
    with db.connect() as conn:
        rows = conn.execute(select(AuditRecord).order_by(AuditRecord.seq)).all()
    return [{**{n: getattr(r, n) for n in _HASHED}, "hash": r.hash} for r in rows]


def head(db: Engine) -> tuple[int, str]:
    with db.connect() as conn:
        row = conn.execute(
            select(PolicyRevision.audit_seq, PolicyRevision.audit_hash).where(
                PolicyRevision.id == 1
            )
        ).one()
    return int(row.audit_seq), str(row.audit_hash)


def revision(db: Engine) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(select(PolicyRevision.revision).where(PolicyRevision.id == 1)).scalar_one()
        )


def rechain(db: Engine, start: int, key: bytes | None = None) -> None:
    """What a forger without the key does after editing: recompute every hash from ``start``
    (plain SHA-256, or HMAC with ``key``) and move the head, so that the chain links again."""
    rows = records(db)
    prev = GENESIS if start == 1 else next(r["hash"] for r in rows if r["seq"] == start - 1)
    with db.begin() as conn:
        for r in rows:
            if r["seq"] < start:
                continue
            fields = {n: r[n] for n in _HASHED}
            fields["prev_hash"] = prev
            prev = record_digest(key, fields)
            conn.execute(
                update(AuditRecord)
                .where(AuditRecord.seq == r["seq"])
                .values(prev_hash=fields["prev_hash"], hash=prev)
            )
        conn.execute(
            update(PolicyRevision)
            .where(PolicyRevision.id == 1)
            .values(audit_seq=rows[-1]["seq"], audit_hash=prev)
        )


# -- intact chains ----------------------------------------------------------------------------


def test_chain_intact_after_demo_load(db: Engine) -> None:
    """R-ADM-7: the demo load is recorded (actor pdp-demo-load, revision 1), seq 1..n without
    gaps, each record linked to the one before, the head on the last one."""
    rows = records(db)
    assert len(rows) > 50
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert {(r["actor"], r["revision"], r["request_id"]) for r in rows} == {(DEMO_ACTOR, 1, None)}
    assert rows[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(rows))
    assert head(db) == (len(rows), rows[-1]["hash"])
    report = AuditChain().verify(db)
    assert report.ok, report.message
    assert report.checked == len(rows) and report.first_broken is None


def test_chain_intact_after_admin_writes(db: Engine, admin: Api) -> None:
    """R-ADM-7: administrative writes append to the chain; it still verifies, also in small
    chunks (the walk crosses chunk boundaries)."""
    before = head_seq(db)
    some_writes(admin)
    after = head_seq(db)
    assert after >= before + 4
    for chunk in (1, 7, 5000):
        report = AuditChain().verify(db, chunk=chunk)
        assert report.ok, report.message
        assert report.checked == after


# -- tampering --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"after": '{"login":"mallory"}'}, id="after"),
        pytest.param({"actor": "someone.else"}, id="actor"),
        pytest.param({"revision": 99}, id="revision"),
        pytest.param({"request_id": "forged"}, id="request_id"),
    ],
)
def test_edited_record_is_detected_and_named(
    db: Engine, admin: Api, change: dict[str, Any]
) -> None:
    """R-ADM-7: an UPDATE of one middle record breaks the chain at that very record."""
    some_writes(admin)
    assert AuditChain().verify(db).ok
    middle = head_seq(db) // 2
    tamper(db, update(AuditRecord).where(AuditRecord.seq == middle).values(**change))
    report = AuditChain().verify(db)
    assert not report.ok
    assert report.first_broken == middle
    assert report.checked == middle - 1
    assert f"record {middle} does not match its hash" in report.message


def test_deleted_middle_record_is_detected(db: Engine) -> None:
    """R-ADM-7: a deleted record leaves a gap: the record after it is named."""
    middle = head_seq(db) // 2
    tamper(db, delete(AuditRecord).where(AuditRecord.seq == middle))
    report = AuditChain().verify(db)
    assert not report.ok
    assert report.first_broken == middle + 1
    assert f"record {middle} is missing" in report.message


RENUMBER = 1_000_000  # above any seq of these tests


def test_deleted_and_renumbered_is_detected(db: Engine) -> None:
    """Deleting a record and renumbering the later ones closes the gap, but not the links."""
    middle = head_seq(db) // 2
    tamper(
        db,
        delete(AuditRecord).where(AuditRecord.seq == middle),
        # Renumbered in two steps, out of the way first: PostgreSQL checks the primary key row
        # by row, in the table's physical order, which need not be the order of seq.
        update(AuditRecord).where(AuditRecord.seq > middle).values(seq=AuditRecord.seq + RENUMBER),
        update(AuditRecord)
        .where(AuditRecord.seq > RENUMBER)
        .values(seq=AuditRecord.seq - RENUMBER - 1),
        update(PolicyRevision)
        .where(PolicyRevision.id == 1)
        .values(audit_seq=PolicyRevision.audit_seq - 1),
    )
    report = AuditChain().verify(db)
    assert not report.ok
    assert report.first_broken == middle


def _forged(seq: int, prev: str, key: bytes | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "seq": seq,
        "ts_us": 1_700_000_000_000_000,
        "actor": "alice.martin",
        "action": "group.members.edit",
        "target": "user:mallory",
        "related": "group:mairie-montreuil/CCAS",
        "organisation": "mairie-montreuil",
        "before": None,
        "after": '{"group":"CCAS","user":"mallory"}',
        "revision": 1,
        "request_id": None,
        "prev_hash": prev,
    }
    row["hash"] = record_digest(key, row)
    return row


def test_inserted_record_with_renumbering_is_detected(db: Engine) -> None:
    """R-ADM-7: a forged record slipped in the middle (later ones renumbered, head moved, the
    forged one itself well hashed and linked) breaks the next record, which no longer matches
    its hash (its seq is hashed)."""
    n = head_seq(db)
    middle = n // 2
    prev = next(r["hash"] for r in records(db) if r["seq"] == middle - 1)
    tamper(
        db,
        # two steps, so that no seq is ever held twice (primary key)
        update(AuditRecord).where(AuditRecord.seq >= middle).values(seq=AuditRecord.seq + n + 10),
        update(AuditRecord).where(AuditRecord.seq > n).values(seq=AuditRecord.seq - n - 9),
        insert(AuditRecord).values(**_forged(middle, prev)),
        update(PolicyRevision).where(PolicyRevision.id == 1).values(audit_seq=n + 1),
    )
    assert [r["seq"] for r in records(db)] == list(range(1, n + 2))
    report = AuditChain().verify(db)
    assert not report.ok
    assert report.first_broken == middle + 1
    assert report.checked == middle  # the forged record itself passed (no key: see below)


@pytest.mark.parametrize("how", ["wrong_hash", "wrong_prev", "head_not_moved"])
def test_appended_record_is_detected(db: Engine, how: str) -> None:
    """R-ADM-7: a record appended behind the service's back: a wrong hash, a wrong link, or a
    perfect record the head does not know of."""
    n, last = head(db)
    row = _forged(n + 1, last if how != "wrong_prev" else "f" * 64)
    if how == "wrong_hash":
        row["hash"] = "0" * 64
    statements: list[Any] = [insert(AuditRecord).values(**row)]
    if how != "head_not_moved":
        statements.append(
            update(PolicyRevision)
            .where(PolicyRevision.id == 1)
            .values(audit_seq=n + 1, audit_hash=row["hash"])
        )
    tamper(db, *statements)
    report = AuditChain().verify(db)
    assert not report.ok
    if how == "head_not_moved":
        assert report.checked == n + 1
        assert "head says" in report.message
    else:
        assert report.first_broken == n + 1
        assert report.checked == n


def test_records_deleted_from_the_end_are_detected(db: Engine, admin: Api) -> None:
    """R-ADM-7: cutting the last records off leaves a chain that links, but the head in
    policy_revision still names the last one."""
    some_writes(admin)
    n = head_seq(db)
    tamper(db, delete(AuditRecord).where(AuditRecord.seq > n - 3))
    report = AuditChain().verify(db)
    assert not report.ok
    assert report.first_broken == n
    assert report.checked == n - 3
    assert "deleted from its end" in report.message


def test_empty_trail_with_a_head_is_detected(db: Engine) -> None:
    """Every record deleted: the head still says there were some."""
    n = head_seq(db)
    tamper(db, delete(AuditRecord))
    report = AuditChain().verify(db)
    assert not report.ok and report.first_broken == n and report.checked == 0


# -- PDP_AUDIT_KEY ----------------------------------------------------------------------------


@pytest.fixture
def keyed_db(db_url: str, today: dt.date, clean_env: None) -> Iterator[tuple[str, Engine]]:
    """An empty database with the demo loaded through a chain keyed with KEY."""
    engine = make_engine(db_url)
    with sessionmaker(engine).begin() as session:
        load_demo(session, today, AuditChain(KEY))
    yield db_url, engine
    engine.dispose()


def test_keyed_chain_detects_a_forger_without_the_key(keyed_db: tuple[str, Engine]) -> None:
    """With PDP_AUDIT_KEY the hashes are HMACs: a forger who edits a record and recomputes
    every later hash with plain SHA-256 (and moves the head) is caught at the edited record.
    The same forgery on an unkeyed chain passes, which is what the key is for."""
    url, db = keyed_db
    app = create_app(
        {
            "database_url": url,
            "decision_log": "off",
            "refresh_interval": 0,
            "verify_orgs": 0,
            "jwt_secret": SECRET,
            "audit_key": KEY,
        }
    )
    try:
        some_writes(Api(app.test_client()))  # the app appends HMAC records too
    finally:
        services(app).db.dispose()
    assert AuditChain(KEY).verify(db).ok
    wrong = AuditChain().verify(db)
    assert not wrong.ok and wrong.first_broken == 1  # not hashed the way an unkeyed chain is

    middle = head_seq(db) // 2
    tamper(db, update(AuditRecord).where(AuditRecord.seq == middle).values(actor="op.caf751"))
    rechain(db, middle, key=None)
    report = AuditChain(KEY).verify(db)
    assert not report.ok
    assert report.first_broken == middle
    # What the forger sees with the tools they have: the forgery looks intact.
    assert AuditChain().verify(db).ok is False  # records before `middle` are HMACs
    rechain(db, 1, key=None)
    assert AuditChain().verify(db).ok  # a fully re-hashed unkeyed chain is indistinguishable
    assert AuditChain(KEY).verify(db).first_broken == 1


def test_unkeyed_chain_cannot_detect_a_full_rehash(db: Engine) -> None:
    """The limit the key removes: without a key, an edit followed by a recomputation of the
    later hashes and of the head verifies."""
    middle = head_seq(db) // 2
    tamper(db, update(AuditRecord).where(AuditRecord.seq == middle).values(actor="op.caf751"))
    assert AuditChain().verify(db).first_broken == middle
    rechain(db, middle)
    assert AuditChain().verify(db).ok


# -- the command line -------------------------------------------------------------------------


def test_cli_audit_verify(demo_db: str, clean_env: None) -> None:
    """`pdp audit verify`: exit 0 on an intact chain, exit 1 naming the first broken record;
    with the wrong PDP_AUDIT_KEY, broken at record 1."""
    runner = CliRunner()
    env = {"PDP_DATABASE_URL": demo_db}
    ok = runner.invoke(cli, ["audit", "verify"], env=env)
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("ok: ")
    db = make_engine(demo_db)
    try:
        middle = head_seq(db) // 2
        keyed = runner.invoke(cli, ["audit", "verify"], env={**env, "PDP_AUDIT_KEY": KEY})
        assert keyed.exit_code == 1 and "record 1 " in keyed.output
        tamper(db, update(AuditRecord).where(AuditRecord.seq == middle).values(after="{}"))
    finally:
        db.dispose()
    broken = runner.invoke(cli, ["audit", "verify"], env=env)
    assert broken.exit_code == 1, broken.output
    assert broken.output.startswith("BROKEN: ")
    assert f"record {middle} " in broken.output


def test_cli_audit_export(demo_db: str, clean_env: None) -> None:
    """`pdp audit export`: every record, oldest first, as JSON lines."""
    result = CliRunner().invoke(cli, ["audit", "export"], env={"PDP_DATABASE_URL": demo_db})
    assert result.exit_code == 0
    lines = [orjson.loads(line) for line in result.output.splitlines()]
    assert [r["seq"] for r in lines] == list(range(1, len(lines) + 1))
    assert lines[0]["actor"] == DEMO_ACTOR


# -- what each write leaves -------------------------------------------------------------------


def test_each_write_is_recorded_with_its_revision_actor_and_request_id(
    db: Engine, admin: Api
) -> None:
    """R-ADM-7: every committed write appends records carrying its revision, its actor and the
    caller's X-Request-Id (echoed in the response); an unusable X-Request-Id is replaced by a
    generated one, stored the same."""
    writes = [
        (
            "alice.martin",
            "POST",
            f"{MAIRIE}/groups",
            {
                "code": "RSA",
                "label": "Instruction RSA",
                "convention": CONVENTION,
                "manager": {"login": "bruno.petit"},
            },
            "req-create-group",
            {"group.create_top"},
        ),
        (
            "alice.martin",
            "POST",
            f"{MAIRIE}/groups/RSA/roles",
            {"service": "cdap", "role": "T18"},
            "req-role",
            {"group.roles.edit"},
        ),
        (
            "bruno.petit",
            "POST",
            f"{MAIRIE}/users",
            {"login": "zoe.durand", "first_name": "Z", "last_name": "D", "email": "z@x.fr"},
            "req-user",
            {"user.create"},
        ),
        (
            "bruno.petit",
            "POST",
            f"{MAIRIE}/users/zoe.durand/memberships",
            {"group": "RSA"},
            "not a valid id!",
            {"group.members.edit"},
        ),
    ]
    for who, method, path, body, request_id, actions in writes:
        reader = AuditReader(db)
        start = head_seq(db)
        r = admin.call(who, method, path, body, request_id=request_id)
        assert r.status_code in (200, 201), r.get_json()
        rev = r.get_json()["revision"]
        echoed = r.headers["X-Request-Id"]
        if request_id.startswith("req-"):
            assert echoed == request_id
        else:
            assert echoed and echoed != request_id
        new = reader.events
        assert new, f"{path}: no audit record"
        assert [e.seq for e in new] == list(range(start + 1, start + 1 + len(new)))
        assert {(e.actor, e.revision, e.request_id) for e in new} == {(who, rev, echoed)}
        assert {e.action for e in new} == actions
        assert all(e.organisation == "mairie-montreuil" for e in new)
        assert head_seq(db) == new[-1].seq
    membership = reader.events[-1]
    assert membership.target == "user:zoe.durand"
    assert membership.related == "group:mairie-montreuil/RSA"
    assert membership.before is None and membership.after is not None
    assert membership.after["group"] == "RSA"
    assert AuditChain().verify(db).ok


@pytest.mark.parametrize(
    ("who", "path", "body", "status"),
    [
        pytest.param(  # a manager may not create a top-level group (R-ADM-5)
            "bruno.petit",
            f"{MAIRIE}/groups",
            {
                "code": "TOP",
                "label": "x",
                "convention": CONVENTION,
                "manager": {"login": "bruno.petit"},
            },
            403,
            id="403",
        ),
        pytest.param(  # already a member
            "alice.martin",
            f"{MAIRIE}/users/bruno.petit/memberships",
            {"group": "CCAS"},
            409,
            id="409",
        ),
        pytest.param(  # the role is already held
            "alice.martin",
            f"{MAIRIE}/groups/CCAS/roles",
            {"service": "cdap", "role": "T18"},
            409,
            id="409-role",
        ),
    ],
)
def test_refused_write_leaves_no_record(
    db: Engine, admin: Api, who: str, path: str, body: Any, status: int
) -> None:
    """R-ADM-7: a refused write changes nothing, so it records nothing (its refusal is a
    decision, in the decision log, not a change)."""
    n, last = head(db)
    rev = revision(db)
    r = admin.call(who, "POST", path, body, request_id="req-refused")
    assert r.status_code == status, r.get_json()
    assert head(db) == (n, last)
    assert revision(db) == rev
    assert len(records(db)) == n
    assert AuditChain().verify(db).ok


def _count_users(db: Engine, login: str) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).where(User.login == login)).scalar_one())


@pytest.mark.parametrize("where", ["audit_append", "after_rows"])
def test_failing_write_leaves_neither_change_nor_record(
    db: Engine, admin: Api, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """R-ADM-7, no change without its record: a write that fails after its rows were added
    (in the audit append itself, after the records were inserted, or just before it) rolls
    everything back: no user, no record, same revision and head; the next write works."""
    n, last = head(db)
    rev = revision(db)
    if where == "audit_append":
        original = AuditChain.append

        def broken(self: AuditChain, session: Any, events: Any, request_id: Any) -> int:
            original(self, session, events, request_id)  # records inserted, head moved
            raise RuntimeError("disk full")

        monkeypatch.setattr(AuditChain, "append", broken)
    else:

        def failing(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("database went away")

        monkeypatch.setattr("pdp.records.policy_write.log_changes", failing)
    body = {"login": "zoe.durand", "first_name": "Z", "last_name": "D", "email": "z@x.fr"}
    r = admin.call("alice.martin", "POST", f"{MAIRIE}/users", body)
    assert r.status_code == 500, r.get_json()
    assert _count_users(db, "zoe.durand") == 0
    assert head(db) == (n, last)
    assert len(records(db)) == n
    assert revision(db) == rev
    assert AuditChain().verify(db).ok
    monkeypatch.undo()
    r = admin.call("alice.martin", "POST", f"{MAIRIE}/users", body)
    assert r.status_code == 201, r.get_json()
    assert _count_users(db, "zoe.durand") == 1
    assert head_seq(db) == n + 1
    assert AuditChain().verify(db).ok


def test_emails_are_masked_in_the_trail(db: Engine, admin: Api) -> None:
    """Emails never reach the audit trail: the record holds the keyed pseudonym (the same the
    query API computes for a search), in after and before alike."""
    email = "zoe.durand@montreuil.example.fr"
    new_email = "zoe.d@autre.example.fr"
    body = {"login": "zoe.durand", "first_name": "Z", "last_name": "D", "email": email}
    assert admin.call("alice.martin", "POST", f"{MAIRIE}/users", body).status_code == 201
    r = admin.call("alice.martin", "PATCH", f"{MAIRIE}/users/zoe.durand", {"email": new_email})
    assert r.status_code == 200, r.get_json()
    created, edited = [r for r in iter_records(db) if r["target"] == "user:zoe.durand"]
    masker = Masker()
    assert created["after"]["email"] == masker.pseudonym(email)
    assert created["after"]["email"].startswith("masked:")
    assert edited["before"]["email"] == masker.pseudonym(email)
    assert edited["after"]["email"] == masker.pseudonym(new_email)
    with db.connect() as conn:
        dump = "\n".join(
            str(tuple(row)) for row in conn.execute(text("SELECT * FROM audit_log")).all()
        )
    assert email not in dump and new_email not in dump
    assert "zoe.durand" in dump  # the login is no email: kept
    assert AuditChain().verify(db).ok


def test_masking_key_changes_the_pseudonym(make_app: MakeApp) -> None:
    """With PDP_LOG_MASK_KEY the pseudonym is an HMAC: not the plain SHA-256 anyone can
    recompute from a guessed address."""
    app, _ = make_app(jwt_secret=SECRET, log_mask_key="mask-key")
    db: Engine = services(app).db
    email = "zoe.durand@montreuil.example.fr"
    body = {"login": "zoe.durand", "first_name": "Z", "last_name": "D", "email": email}
    assert (
        Api(app.test_client()).call("alice.martin", "POST", f"{MAIRIE}/users", body).status_code
        == 201
    )
    stored = next(r for r in iter_records(db) if r["target"] == "user:zoe.durand")["after"]["email"]
    assert stored == Masker(key="mask-key").pseudonym(email)
    assert stored != Masker().pseudonym(email)
    assert hashlib.sha256(email.encode()).hexdigest()[:16] not in stored


def test_verify_is_not_fooled_by_a_write_during_the_walk(db: Engine) -> None:
    """`pdp audit verify` runs while the service writes: a record committed after the walk
    began is not half seen (the head read first, the new record in a later chunk), which
    would report an intact chain as broken."""
    n = head_seq(db)
    fired: list[int] = []

    def append_one() -> None:
        event = AuditEvent(
            "alice.martin", "user.edit", "user:chloe.roux", "mairie-montreuil", {}, {}, 1, 0.0
        )
        with sessionmaker(db).begin() as session:
            AuditChain().append(session, [event], "req-during")

    @sa_event.listens_for(db, "after_cursor_execute")
    def during(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM audit_log" in statement and not fired:
            fired.append(1)
            append_one()  # commits on another connection, mid-walk

    try:
        report = AuditChain().verify(db, chunk=5)
    finally:
        sa_event.remove(db, "after_cursor_execute", during)
    assert fired
    assert report.ok, report.message
    assert report.checked == n  # the walk's snapshot: the chain as it was when it began
    assert head_seq(db) == n + 1
    assert AuditChain().verify(db).checked == n + 1
