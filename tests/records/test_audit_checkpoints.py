"""Signed checkpoints of the audit chain's head, kept outside the database.

The attack they answer: delete the newest audit records and move the stored head back (and the
policy revision with it), or empty the table and reset the head; the chain alone still verifies.
What is proved here, on SQLite and PostgreSQL, with and without ``PDP_AUDIT_KEY``:

- the periodic writer (driven through its step function, with an injected clock) writes a
  signed checkpoint of the head, once per head, and refuses to checkpoint a chain that lacks the
  latest checkpoint;
- ``pdp audit verify`` finds both attacks with a checkpoint, naming the missing records, and
  the policy revision against the chain finds an emptied table even without one;
- a tampered, forged, misnamed or unreadable checkpoint file is refused and reported;
- normal operation verifies clean; without a checkpoint directory verify says none was compared;
- the operator's procedure after a restore: verify fails naming the checkpoint, ``--checkpoint``
  compares with the one taken before the backup, ``--after-restore`` acknowledges it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import sessionmaker

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import AuditRecord, PolicyRevision
from pdp.cli import cli, main
from pdp.core.config import Settings
from pdp.core.errors import ConfigurationError
from pdp.engine.rules import Target
from pdp.observability import metrics
from pdp.records.audit_trail import GENESIS, AuditChain, head_seq
from pdp.records.checkpoints import (
    Checkpoint,
    CheckpointError,
    CheckpointWriter,
    encode,
    load,
    scan,
    sign,
)
from pdp.services.admin.service import AdminService
from pdp.services.demo import load_demo
from pdp.web.app import create_app
from pdp.web.container import services

from support.actors import Api
from support.audit import KEY, reset_audit_head, some_writes, tamper
from support.constants import SECRET

NOON = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC).timestamp()


@pytest.fixture(autouse=True)
def _fresh_audit_head(request: pytest.FixtureRequest, backend: str) -> None:
    """As in test_audit_chain: tests/conftest.py empties audit_log between PostgreSQL tests but
    leaves the chain's head; point it back to the genesis before the demo is loaded."""
    if backend == "postgres":
        reset_audit_head(request.getfixturevalue("postgres_database"))


@dataclass
class Trail:
    """The app over a demo chained with ``key``, its checkpoint directory, and the CLI."""

    app: Flask
    db: Engine
    url: str
    key: str
    directory: Path

    @property
    def admin(self) -> Api:
        return Api(self.app.test_client())

    @property
    def writer(self) -> CheckpointWriter:
        writer = services(self.app).checkpoints
        assert isinstance(writer, CheckpointWriter)
        return writer

    def cli(self, *args: str, directory: bool = True) -> Result:
        env = {"PDP_DATABASE_URL": self.url, "PDP_AUDIT_KEY": self.key}
        if directory:
            env["PDP_AUDIT_CHECKPOINT_DIR"] = str(self.directory)
        return CliRunner().invoke(cli, ["audit", *args], env=env)

    def files(self) -> list[str]:
        return sorted(p.name for p in self.directory.iterdir())


@pytest.fixture(params=["keyed", "unkeyed"])
def trail(
    request: pytest.FixtureRequest, db_url: str, today: dt.date, clean_env: None, tmp_path: Path
) -> Iterator[Trail]:
    """The demo loaded through a chain keyed with KEY (or unkeyed), and an app over it that
    checkpoints into a directory of its own."""
    key = KEY if request.param == "keyed" else ""
    engine = make_engine(db_url)
    with sessionmaker(engine).begin() as session:
        load_demo(session, today, AuditChain(key))
    engine.dispose()
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    app = create_app(
        {
            "database_url": db_url,
            "decision_log": "off",
            "refresh_interval": 0,
            "verify_orgs": 0,
            "rate_limit": "off",
            "jwt_secret": SECRET,
            "audit_key": key,
            "audit_checkpoint_dir": str(directory),
        }
    )
    yield Trail(app, services(app).db, db_url, key, directory)
    services(app).db.dispose()


def record(db: Engine, seq: int) -> tuple[str, int]:
    """Record ``seq``'s hash and revision."""
    with db.connect() as conn:
        row = conn.execute(
            select(AuditRecord.hash, AuditRecord.revision).where(AuditRecord.seq == seq)
        ).one()
    return str(row.hash), int(row.revision)


def policy_revision(db: Engine) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(select(PolicyRevision.revision).where(PolicyRevision.id == 1)).scalar_one()
        )


def cut(db: Engine, keep: int, *, revision_too: bool) -> None:
    """The attack: delete every record after ``keep`` and move the head back onto record
    ``keep`` (and, ``revision_too``, the policy revision back to that record's)."""
    last_hash, last_revision = record(db, keep) if keep else (GENESIS, 0)
    values: dict[str, Any] = {"audit_seq": keep, "audit_hash": last_hash}
    if revision_too:
        values["revision"] = last_revision
    tamper(
        db,
        delete(AuditRecord).where(AuditRecord.seq > keep),
        update(PolicyRevision).where(PolicyRevision.id == 1).values(**values),
    )


# -- the writer --------------------------------------------------------------------------------


def test_writer_step_writes_a_signed_checkpoint_of_the_head(trail: Trail) -> None:
    """A step writes {generation, seq, hash, revision, written_at, host, pid}, signed; a step
    with the head unchanged writes nothing new; a write moves the head and the next step
    checkpoints it. The time written is the writer's clock (injected)."""
    writer = CheckpointWriter(trail.db, trail.directory, trail.key, clock=lambda: NOON)
    n = head_seq(trail.db)
    first = writer.step()
    assert (first.generation, first.seq, first.hash) == (0, n, record(trail.db, n)[0])
    assert first.revision == policy_revision(trail.db) == 1
    assert first.written_at == "2026-11-24T12:00:00Z"
    assert first.pid == os.getpid() and first.host
    assert trail.files() == [first.name]
    stored = orjson.loads((trail.directory / first.name).read_bytes())
    assert stored["audit_seq"] == n and stored["format"] == "pdp-audit-checkpoint/1"
    assert len(stored["signature"]) == 64
    assert load(trail.directory / first.name, trail.key.encode() or None) == first

    assert writer.step() == first  # the head has not moved: nothing new
    assert trail.files() == [first.name]

    some_writes(trail.admin)
    second = writer.step()
    assert second.seq == head_seq(trail.db) > n and second.revision == 5
    assert trail.files() == sorted([first.name, second.name])
    assert scan(trail.directory, trail.key.encode() or None).latest == second


def test_service_writer_comes_from_the_settings(trail: Trail) -> None:
    """The app's writer (started in each worker by pdp.web.server) uses PDP_AUDIT_CHECKPOINT_DIR
    and PDP_AUDIT_CHECKPOINT_INTERVAL (5 minutes by default); its round counts a refusal in
    pdp_audit_checkpoint_errors_total instead of raising."""
    writer = trail.writer
    assert writer.directory == trail.directory and writer.interval == 300.0
    assert writer.step_logged() is not None
    assert len(trail.files()) == 1
    cut(trail.db, head_seq(trail.db) - 2, revision_too=True)
    errors = metrics.AUDIT_CHECKPOINT_ERRORS._value.get()
    assert writer.step_logged() is None
    assert metrics.AUDIT_CHECKPOINT_ERRORS._value.get() == errors + 1
    assert len(trail.files()) == 1


def test_writer_refuses_to_checkpoint_a_cut_chain(trail: Trail) -> None:
    """Once records were cut off the end (head moved back), the writer does not bless the cut
    chain with a newer checkpoint: it refuses, naming the missing records, and writes nothing;
    nor after new writes re-use the cut record numbers (their hashes differ)."""
    some_writes(trail.admin)
    latest = trail.writer.step()
    n = latest.seq
    cut(trail.db, n - 4, revision_too=True)
    with pytest.raises(CheckpointError, match=f"records {n - 3}-{n} are missing"):
        trail.writer.step()
    some_writes_again(trail)
    assert head_seq(trail.db) >= n
    with pytest.raises(CheckpointError, match=f"record {n} is not the one checkpointed"):
        trail.writer.step()
    assert trail.files() == [latest.name]


def some_writes_again(trail: Trail) -> None:
    """Writes that move the head past where it was (new records under reused numbers)."""
    for login in ("yan.a", "yan.b", "yan.c", "yan.d", "yan.e"):
        body = {"login": login, "first_name": "Y", "last_name": "A", "email": f"{login}@x.fr"}
        r = trail.admin.call(
            "alice.martin", "POST", "/v1/organisations/mairie-montreuil/users", body
        )
        assert r.status_code == 201, r.get_json()


# -- the attacks -------------------------------------------------------------------------------


@pytest.mark.parametrize("revision_too", [False, True], ids=["head", "head+revision"])
def test_cut_tail_with_head_moved_back_is_found_by_the_checkpoint(
    trail: Trail, revision_too: bool
) -> None:
    """The attack: delete the newest records and move the head back (and the revision). The
    chain alone links; verify compares it with the latest checkpoint and names what is
    missing: records n-3..n, the chain ending at n-4, the checkpoint's time and hash."""
    some_writes(trail.admin)
    latest = trail.writer.step()
    n = latest.seq
    cut(trail.db, n - 4, revision_too=revision_too)
    walk = AuditChain(trail.key).verify(trail.db)
    assert walk.ok is (revision_too or record(trail.db, n - 4)[1] == 5)  # what it was before

    report = AuditChain(trail.key).verify(trail.db, checkpoint=latest)
    assert not report.ok and report.first_broken == n - 3 and report.lacks_checkpoint
    result = trail.cli("verify")
    assert result.exit_code == 1, result.output
    first = result.output.splitlines()[0]
    assert first.startswith(
        f"BROKEN: records {n - 3}-{n} are missing: the chain ends at record {n - 4}, "
        f"the checkpoint {latest.name} (written {latest.written_at} by "
    )
    assert f"saw record {n} with hash {latest.hash}" in first
    assert "pdp audit checkpoint --after-restore" in result.output  # the restore hint


def test_cut_of_one_write_within_a_revision_is_found(trail: Trail) -> None:
    """Deleting only the last record (one of the several a revision wrote) keeps the revision
    consistent: only the checkpoint shows it; "record n is missing"."""
    some_writes(trail.admin)
    latest = trail.writer.step()
    n = latest.seq
    cut(trail.db, n - 1, revision_too=True)
    result = trail.cli("verify")
    assert result.exit_code == 1
    assert result.output.startswith(
        f"BROKEN: record {n} is missing: the chain ends at record {n - 1}"
    )


def test_emptied_trail_with_head_reset_is_found_without_a_checkpoint(trail: Trail) -> None:
    """Every record deleted and the head reset to the genesis: the chain of 0 records links,
    but the policy is at revision 1 while no record says so. Found with no checkpoint
    directory at all, and said so."""
    cut(trail.db, 0, revision_too=False)
    report = AuditChain(trail.key).verify(trail.db)
    assert not report.ok and report.checked == 0 and report.first_broken == 1
    assert "the chain is empty but the policy is at revision 1" in report.message
    result = trail.cli("verify", directory=False)
    assert result.exit_code == 1
    assert result.output.startswith("BROKEN: the chain is empty but the policy is at revision 1")


def test_emptied_trail_with_head_and_revision_reset_is_found_by_the_checkpoint(
    trail: Trail,
) -> None:
    """The same, the revision reset to 0 too: only the checkpoint shows it ("records 1-n")."""
    latest = trail.writer.step()
    n = latest.seq
    cut(trail.db, 0, revision_too=True)
    assert AuditChain(trail.key).verify(trail.db).ok  # what the attack relied on
    result = trail.cli("verify")
    assert result.exit_code == 1
    assert result.output.startswith(
        f"BROKEN: records 1-{n} are missing: the chain ends at record 0, the checkpoint"
    )


def test_revision_against_the_chain(trail: Trail) -> None:
    """The policy revision is the last record's: ahead of it, records are missing; behind it,
    the revision was moved back."""
    some_writes(trail.admin)
    tamper(trail.db, update(PolicyRevision).where(PolicyRevision.id == 1).values(revision=7))
    report = AuditChain(trail.key).verify(trail.db)
    assert not report.ok
    assert "the records of revisions 6-7 are missing" in report.message
    tamper(trail.db, update(PolicyRevision).where(PolicyRevision.id == 1).values(revision=3))
    report = AuditChain(trail.key).verify(trail.db)
    assert not report.ok
    assert "is of revision 5, after the policy's revision 3" in report.message


def test_rewritten_chain_is_found(trail: Trail) -> None:
    """Records cut and new ones written under the same numbers: the chain is as long as the
    checkpoint's, but its record there is another one."""
    some_writes(trail.admin)
    latest = trail.writer.step()
    n = latest.seq
    cut(trail.db, n - 4, revision_too=True)
    some_writes_again(trail)
    result = trail.cli("verify")
    assert result.exit_code == 1
    assert result.output.startswith(f"BROKEN: record {n} is not the one checkpointed (hash ")


# -- the checkpoint files ----------------------------------------------------------------------


def test_tampered_checkpoint_is_refused(trail: Trail) -> None:
    """A checkpoint edited to match a cut chain (its signature kept) is refused by signature,
    reported, and not used: verify falls back on the valid one below it and fails on the cut.
    Likewise a checkpoint signed without the key (or with another), one renamed, and one that
    is not JSON; and ``--checkpoint`` given a tampered file."""
    first = trail.writer.step()
    some_writes(trail.admin)
    latest = trail.writer.step()
    n = latest.seq
    cut(trail.db, n - 2, revision_too=True)
    keep_hash, keep_revision = record(trail.db, n - 2)
    path = trail.directory / latest.name
    stored = orjson.loads(path.read_bytes())
    forged = {**stored, "audit_seq": n - 2, "audit_hash": keep_hash, "revision": keep_revision}
    forged_name = Checkpoint(0, n - 2, keep_hash, keep_revision, "x", "h", 1).name
    (trail.directory / forged_name).write_bytes(orjson.dumps(forged))
    other_key = b"another-key-" + b"x" * 30 if trail.key else KEY.encode()
    signed_otherwise = Checkpoint(
        1, n - 2, keep_hash, keep_revision, "2026-11-24T12:00:00Z", "h", 1
    )
    (trail.directory / signed_otherwise.name).write_bytes(encode(signed_otherwise, other_key))
    (trail.directory / f"audit-g0000-{n + 1:012d}-{'0' * 16}.json").write_bytes(b"{not json")
    (trail.directory / "audit-latest.json").write_bytes(path.read_bytes())

    found = scan(trail.directory, trail.key.encode() or None)
    assert found.latest == latest and found.read == 5
    assert len(found.problems) == 4

    result = trail.cli("verify")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"BROKEN: records {n - 1}-{n} are missing")
    problems = "\n".join(lines[1:])
    assert f"BROKEN: checkpoint {forged_name}: the signature does not match" in problems
    assert f"{signed_otherwise.name}: the signature does not match" in problems
    assert "not a JSON checkpoint" in problems
    assert "audit-latest.json: not a checkpoint file name" in problems

    refused = trail.cli("verify", "--checkpoint", str(trail.directory / forged_name))
    assert refused.exit_code == 1
    assert refused.output.startswith("BROKEN: checkpoint ") and "signature" in refused.output
    # The genuine older checkpoint still verifies the chain it saw.
    older = trail.cli("verify", "--checkpoint", str(trail.directory / first.name))
    assert older.exit_code == 0, older.output


def test_misnamed_checkpoint_is_reported(trail: Trail) -> None:
    """A valid checkpoint under another checkpoint's name (to rank it latest) is refused."""
    first = trail.writer.step()
    (trail.directory / f"audit-g0009-{first.seq:012d}-{first.hash[:16]}.json").write_bytes(
        (trail.directory / first.name).read_bytes()
    )
    result = trail.cli("verify")
    assert result.exit_code == 1
    assert "its name does not match its content" in result.output


@pytest.mark.parametrize(
    ("change", "said"),
    [
        pytest.param({"audit_seq": "73"}, "field audit_seq missing or not a int", id="type"),
        pytest.param({"pid": True}, "field pid missing or not a int", id="bool"),
        pytest.param({"host": None}, "field host missing or not a str", id="missing"),
        pytest.param({"audit_hash": "x" * 64}, "malformed hash", id="hash"),
        pytest.param({"supersedes": [1, "a"]}, "field supersedes malformed", id="supersedes"),
        pytest.param({"format": "other/1"}, "not a pdp-audit-checkpoint/1 file", id="format"),
    ],
)
def test_malformed_checkpoint_is_refused(trail: Trail, change: dict[str, Any], said: str) -> None:
    """A checkpoint whose fields are malformed is refused with what is wrong, even when signed
    with the right key (a bug, or anyone when there is no key), never with a stack trace."""
    latest = trail.writer.step()
    path = trail.directory / latest.name
    fields = {**orjson.loads(path.read_bytes()), **change}
    fields.pop("signature")
    path.write_bytes(
        orjson.dumps({**fields, "signature": sign(trail.key.encode() or None, fields)})
    )
    with pytest.raises(CheckpointError, match=re.escape(f"{latest.name}: {said}")):
        load(path, trail.key.encode() or None)
    result = trail.cli("verify")
    assert result.exit_code == 1 and said in result.output


# -- normal operation ------------------------------------------------------------------------


def test_normal_operation_verifies_clean(trail: Trail) -> None:
    """Writes, checkpoints, more writes (the head past the latest checkpoint): verify is ok,
    names the checkpoint it compared, and the CLI checkpoint writes the new head."""
    trail.writer.step()
    some_writes(trail.admin)
    latest = trail.writer.step()
    body = {"login": "yan.a", "first_name": "Y", "last_name": "A", "email": "y@x.fr"}
    r = trail.admin.call("alice.martin", "POST", "/v1/organisations/mairie-montreuil/users", body)
    assert r.status_code == 201
    n = head_seq(trail.db)
    result = trail.cli("verify")
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"ok: {n} records, chain intact, head {record(trail.db, n)[0]}, revision 6; "
        f"it holds the latest {latest.describe()}\n"
    )
    written = trail.cli("checkpoint")
    assert written.exit_code == 0, written.output
    assert written.output.startswith(str(trail.directory / "audit-g0000-"))
    assert f": record {n}, hash {record(trail.db, n)[0]}, revision 6, generation 0" in (
        written.output
    )
    again = trail.cli("verify")
    assert again.exit_code == 0 and "(written " in again.output


def test_verify_without_a_checkpoint_directory_says_so(trail: Trail) -> None:
    """No PDP_AUDIT_CHECKPOINT_DIR: the chain and the revision are checked, and the output says
    no checkpoint was compared; an empty directory says none is there yet."""
    no_dir = trail.cli("verify", directory=False)
    assert no_dir.exit_code == 0, no_dir.output
    assert no_dir.output.rstrip().endswith(
        "revision 1; no checkpoint compared (PDP_AUDIT_CHECKPOINT_DIR is not set)"
    )
    empty = trail.cli("verify")
    assert empty.exit_code == 0
    assert f"no checkpoint in {trail.directory} yet: none compared" in empty.output


def test_write_that_records_nothing_still_leaves_a_record(trail: Trail) -> None:
    """Every revision leaves a record (what the revision check relies on): a write through
    AdminService that changed nothing leaves one for its action and target."""
    admin: AdminService = services(trail.app).admin
    before = policy_revision(trail.db)
    with admin.write("op.caf751", "organisation.create", Target("platform")) as tx:
        assert tx.revision == before + 1
    n = head_seq(trail.db)
    with trail.db.connect() as conn:
        row = conn.execute(select(AuditRecord).where(AuditRecord.seq == n)).one()
    assert (row.actor, row.action, row.target, row.revision) == (
        "op.caf751",
        "organisation.create",
        "platform",
        before + 1,
    )
    assert AuditChain(trail.key).verify(trail.db).ok


# -- after a restore ---------------------------------------------------------------------------


def test_restore_is_reported_then_checked_then_acknowledged(trail: Trail) -> None:
    """The operator's procedure (README): a restore to an earlier point goes behind the latest
    checkpoint; verify fails naming it, with the hint; ``verify --checkpoint`` with the
    checkpoint taken before the backup passes; ``checkpoint`` refuses and ``--after-restore``
    starts generation 1 naming what it supersedes; from then on all verifies clean."""
    at_backup = trail.writer.step()
    some_writes(trail.admin)
    latest = trail.writer.step()
    cut(trail.db, at_backup.seq, revision_too=True)  # what restoring the backup looks like

    result = trail.cli("verify")
    assert result.exit_code == 1
    assert "(if the database was restored from a backup, check " in result.output
    checked = trail.cli("verify", "--checkpoint", str(trail.directory / at_backup.name))
    assert checked.exit_code == 0, checked.output
    assert f"it holds the {at_backup.describe()}" in checked.output

    refused = trail.cli("checkpoint")
    assert refused.exit_code == 1 and "not checkpointing" in refused.output

    acknowledged = trail.cli("checkpoint", "--after-restore")
    assert acknowledged.exit_code == 0, acknowledged.output
    assert f"generation 1, superseding record {latest.seq} of the previous generation" in (
        acknowledged.output
    )
    found = scan(trail.directory, trail.key.encode() or None)
    assert found.latest is not None and found.latest.generation == 1
    assert found.latest.supersedes == (latest.seq, latest.hash)
    assert trail.cli("verify").exit_code == 0

    some_writes_again(trail)
    assert trail.writer.step().generation == 1
    assert trail.cli("verify").exit_code == 0
    nothing = trail.cli("checkpoint", "--after-restore")
    assert nothing.exit_code == 1 and "nothing to acknowledge" in nothing.output


def test_after_restore_refuses_a_broken_chain(trail: Trail) -> None:
    """An acknowledgement vouches for the restored chain: refused if it does not verify."""
    latest = trail.writer.step()
    cut(trail.db, latest.seq - 2, revision_too=False)
    tamper(trail.db, update(AuditRecord).where(AuditRecord.seq == 3).values(actor="x"))
    result = trail.cli("checkpoint", "--after-restore")
    assert result.exit_code == 1
    assert "record 3 does not match its hash" in result.output and "not acknowledged" in (
        result.output
    )
    assert trail.files() == [latest.name]


# -- configuration -----------------------------------------------------------------------------


def test_production_refuses_unsigned_checkpoints(
    trail: Trail, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """PDP_ENV=production: no checkpoint written or compared without a proper PDP_AUDIT_KEY
    (exit 2, as for every configuration error); a checkpoint directory that does not exist is
    refused, not made; none at all for `pdp audit checkpoint` is refused too."""

    def run(*args: str, **env: str) -> str:
        settings = {
            "PDP_DATABASE_URL": trail.url,
            "PDP_ENV": "production",
            "PDP_AUDIT_KEY": "",
            "PDP_AUDIT_CHECKPOINT_DIR": str(trail.directory),
            **env,
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr("sys.argv", ["pdp", "audit", *args])
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == 2
        return capsys.readouterr().err

    for verb in ("checkpoint", "verify"):
        assert run(verb).startswith(
            "error CONFIGURATION_ERROR: PDP_ENV=production refuses unsigned audit checkpoints: "
            "PDP_AUDIT_KEY: it is not set"
        )
    absent = trail.directory / "not-mounted"
    assert "not an existing directory" in run(
        "checkpoint", PDP_ENV="development", PDP_AUDIT_CHECKPOINT_DIR=str(absent)
    )
    assert not absent.exists()
    assert "PDP_AUDIT_CHECKPOINT_DIR is not set" in run(
        "checkpoint", PDP_ENV="development", PDP_AUDIT_CHECKPOINT_DIR=""
    )
    assert trail.files() == []


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "86401", "soon"])
def test_checkpoint_interval_must_be_sensible(value: str) -> None:
    with pytest.raises(ConfigurationError, match="PDP_AUDIT_CHECKPOINT_INTERVAL"):
        Settings.from_env({"PDP_AUDIT_CHECKPOINT_INTERVAL": value})
