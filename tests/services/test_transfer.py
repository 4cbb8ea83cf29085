"""``pdp export`` / ``pdp import`` (pdp.services.transfer, docs/transfer-format.md) on every
driver: the demo's round trip byte for byte, idempotence, refused lines with their number, code
and message (R-GRP-4, R-ADM-1, R-ADM-3, R-MEM-1, R-CON-1) leaving their organisation untouched,
the dry run, the audit record, and the --organisation and --at filters."""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import io
import os
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from pdp.adapters.sql.database import UnitOfWork, make_engine
from pdp.adapters.sql.models import AuditRecord, PolicyRevision
from pdp.cli import cli
from pdp.core.catalogue import load_catalogue
from pdp.records.audit_trail import AuditChain, iter_records
from pdp.services.transfer.export import export_store
from pdp.services.transfer.importer import Importer, ImportReport

from support.databases import new_database


def export(url: str, organisation: str | None = None, at: dt.date | None = None) -> bytes:
    engine = make_engine(url)
    try:
        with UnitOfWork(sessionmaker(engine)).begin() as session:
            out = io.BytesIO()
            export_store(session, out, organisation, at)
            return out.getvalue()
    finally:
        engine.dispose()


def import_(url: str, data: bytes, *, dry_run: bool = False) -> ImportReport:
    engine = make_engine(url)
    try:
        uow = UnitOfWork(sessionmaker(engine, expire_on_commit=False))
        digest = hashlib.sha256(data).hexdigest()
        importer = Importer(uow, AuditChain(), load_catalogue(), "tests", digest, dry_run=dry_run)
        return importer.run(io.BytesIO(data))
    finally:
        engine.dispose()


def state(url: str) -> tuple[int, int]:
    """The policy revision and the number of audit records."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            revision = conn.execute(select(PolicyRevision.revision)).scalar_one()
            audits = conn.execute(select(func.count()).select_from(AuditRecord)).scalar_one()
            return int(revision), int(audits)
    finally:
        engine.dispose()


def insert_in(data: bytes, organisation: str, *records: dict[str, object]) -> tuple[bytes, int]:
    """``data`` with ``records`` after the last line of ``organisation``; the first one's
    line number."""
    lines = data.splitlines(keepends=True)
    last = max(
        i for i, raw in enumerate(lines) if orjson.loads(raw).get("organisation") == organisation
    )
    new = [orjson.dumps(r) + b"\n" for r in records]
    return b"".join(lines[: last + 1] + new + lines[last + 1 :]), last + 2


def _line(record: str, **fields: object) -> dict[str, object]:
    return {"record": record, "organisation": "mairie-montreuil", **fields}


@pytest.fixture
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty SQLite store (beside ``demo_db`` on either driver: a cross-driver import)."""
    return new_database(request, "sqlite", tmp_path)


def test_round_trip_of_the_demo_is_byte_for_byte(
    request: pytest.FixtureRequest, demo_db: str, backend: str, tmp_path: Path
) -> None:
    first = export(demo_db)
    assert first.splitlines()[0] == (
        b'{"record":"header","format":"pdp-transfer","version":1,"organisation":null,"at":null}'
    )
    assert export(demo_db) == first  # deterministic
    target = new_database(request, backend, tmp_path)  # PostgreSQL: emptied
    report = import_(target, first)
    assert report.refused == []
    assert report.added["organisation"] == 5 and report.unchanged == 0
    assert export(target) == first
    # Idempotent: the second import changes nothing, takes no revision, writes no record.
    before = state(target)
    again = import_(target, first)
    assert again.refused == [] and again.added == {} and again.updated == 0
    assert again.unchanged == len(first.splitlines()) - 1
    assert state(target) == before
    assert export(target) == first


def test_a_refused_line_leaves_its_organisation_untouched_R_GRP_4(demo_db: str, empty: str) -> None:
    data, number = insert_in(
        export(demo_db),
        "mairie-montreuil",
        _line(
            "group_role",
            group="CCAS-ACCUEIL",
            service="cdap",
            role="T5",
            opens_on="2025-01-01",
            closes_on=None,
        ),
    )
    report = import_(empty, data)
    assert [(r.line, r.code) for r in report.refused] == [(number, "SUBGROUP_ROLE_NOT_IN_PARENT")]
    assert "ne peut porter que des rôles de son parent CCAS (R-GRP-4)" in report.refused[0].message
    assert report.untouched == ["mairie-montreuil"]
    whole = export(empty)
    assert b'"mairie-montreuil"' not in whole  # nothing half-written
    assert b'"organisation":"sip-lyon"' in whole  # the other organisations are in
    # Into the store that holds it: the organisation stays exactly as it was.
    before = export(demo_db)
    assert import_(demo_db, data).untouched == ["mairie-montreuil"]
    assert export(demo_db) == before


@pytest.mark.parametrize(
    ("records", "code", "words"),
    [
        pytest.param(
            [
                _line(
                    "group_role",
                    group="CCAS",
                    service="dgfip",
                    role="enquete",
                    opens_on="2025-01-01",
                    closes_on=None,
                )
            ],
            "SERVICE_NOT_SUBSCRIBED",
            "(R-GRP-4)",
            id="R-GRP-4-subscription",
        ),
        pytest.param(
            [
                _line("partner_admin", login=login, opens_on="2025-06-01", closes_on=None)
                for login in ("bruno.petit", "chloe.roux")
            ],
            "TOO_MANY_ADMINS",
            "au plus 2 (R-ADM-1)",
            id="R-ADM-1",
        ),
        pytest.param(
            [
                _line(
                    "group_manager",
                    group="CCAS",
                    login="chloe.roux",
                    opens_on="2025-01-01",
                    closes_on=None,
                )
            ],
            "MANAGERS_OVERLAP",
            "(R-ADM-3)",
            id="R-ADM-3",
        ),
        pytest.param(
            [
                _line(
                    "membership",
                    group="CCAS",
                    login="karim.diallo",
                    opens_on="2025-01-01",
                    closes_on=None,
                )
            ],
            "UNKNOWN_USER",
            "Utilisateur inconnu dans mairie-montreuil",
            id="R-MEM-1",
        ),
        pytest.param(
            [
                _line(
                    "subscription",
                    convention="CONV-mairie-montreuil-931",
                    service="cdap",
                    opens_on="2025-01-01",
                    closes_on=None,
                )
            ],
            "ALREADY_SUBSCRIBED",
            "(R-CON-1)",
            id="R-CON-1",
        ),
        pytest.param(
            [
                _line(
                    "membership",
                    group="CCAS",
                    login="chloe.roux",
                    opens_on="2025-01-01",
                    closes_on="2024-01-01",
                )
            ],
            "INVALID_DATES",
            "La date de clôture",
            id="dates",
        ),
    ],
)
def test_each_rule_refuses_its_line(
    demo_db: str, empty: str, records: list[dict[str, object]], code: str, words: str
) -> None:
    data, number = insert_in(export(demo_db), "mairie-montreuil", *records)
    report = import_(empty, data)
    assert report.refused, report
    assert report.refused[-1].line in range(number, number + len(records))
    assert report.refused[-1].code == code
    assert words in report.refused[-1].message
    assert report.untouched == ["mairie-montreuil"]


def test_a_line_that_is_no_record_is_refused_with_its_number(demo_db: str, empty: str) -> None:
    data, number = insert_in(
        export(demo_db), "mairie-montreuil", _line("membership", group="CCAS", login="x y")
    )
    report = import_(empty, data)
    assert [(r.line, r.code) for r in report.refused] == [(number, "VALIDATION_ERROR")]
    assert report.refused[0].message.startswith("ligne invalide : membership.")
    assert report.untouched == ["mairie-montreuil"]


def test_dry_run_writes_nothing(demo_db: str, empty: str) -> None:
    data = export(demo_db)
    before = state(empty)
    report = import_(empty, data, dry_run=True)
    assert report.refused == [] and report.added["user"] == 14 and report.written == []
    assert state(empty) == before
    assert export(empty) == data.splitlines(keepends=True)[0]


def test_the_audit_record_names_the_actor_and_the_files_digest(demo_db: str, empty: str) -> None:
    data = export(demo_db)
    import_(empty, data)
    engine = make_engine(empty)
    try:
        records = [r for r in iter_records(engine) if r["action"] == "transfer.import"]
    finally:
        engine.dispose()
    assert [r["target"] for r in records] == [
        "network",
        "organisation:asso-entraide",
        "organisation:ccas-grand-paris",
        "organisation:habitat-93",
        "organisation:mairie-montreuil",
        "organisation:sip-lyon",
    ]
    digest = hashlib.sha256(data).hexdigest()
    for r in records:
        assert r["actor"] == "tests"
        assert r["after"]["file_sha256"] == digest


def test_one_organisation_exports_with_the_cafs_it_names(demo_db: str, empty: str) -> None:
    one = export(demo_db, "mairie-montreuil")
    assert orjson.loads(one.splitlines()[0])["organisation"] == "mairie-montreuil"
    assert {orjson.loads(r).get("organisation") for r in one.splitlines()[2:]} == {
        "mairie-montreuil"
    }
    assert [orjson.loads(r)["code"] for r in one.splitlines() if b'"caf"' in r[:20]] == ["931"]
    assert import_(empty, one).refused == []
    assert export(empty).splitlines()[1:] == one.splitlines()[1:]


def test_at_keeps_what_is_open_that_day_and_what_it_names(
    demo_db: str, empty: str, today: dt.date
) -> None:
    past = _line(
        "membership",
        group="CCAS",
        login="chloe.roux",
        opens_on="2025-01-01",
        closes_on="2025-06-01",
    )
    data, _ = insert_in(export(demo_db), "mairie-montreuil", past)
    assert import_(demo_db, data).added == {"membership": 1}
    marker = orjson.dumps(past)
    assert marker not in export(demo_db, at=today)
    then = export(demo_db, at=dt.date(2025, 3, 1))
    assert marker in then
    # What a kept record names comes along: fabien.morel opens in 2027, his membership is open.
    assert b'"login":"fabien.morel","first_name"' in then
    assert import_(empty, then).refused == []


def test_command_line_export_and_import(
    demo_db: str, empty: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("PDP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PDP_DATABASE_URL", demo_db)
    path = tmp_path / "store.jsonl"
    out = CliRunner().invoke(cli, ["export", "-o", str(path)])
    assert out.exit_code == 0, out.output
    bad, number = insert_in(
        path.read_bytes(),
        "sip-lyon",
        {
            "record": "group_manager",
            "organisation": "sip-lyon",
            "group": "DGFIP-ENQUETE",
            "login": "jules.lambert",
            "opens_on": "2025-01-01",
            "closes_on": None,
        },
    )
    bad_path = tmp_path / "bad.jsonl"
    bad_path.write_bytes(bad)
    monkeypatch.setenv("PDP_DATABASE_URL", empty)
    dry = CliRunner().invoke(cli, ["import", str(path), "--dry-run"])
    assert dry.exit_code == 0 and "would add" in dry.stdout
    refused = CliRunner().invoke(cli, ["import", str(bad_path)])
    assert refused.exit_code == 1
    assert f"line {number}: MANAGERS_OVERLAP: Le groupe DGFIP-ENQUETE" in refused.stderr
    assert "(untouched: sip-lyon)" in refused.stdout
    done = CliRunner().invoke(cli, ["import", str(path)])
    assert done.exit_code == 0, done.output
    assert CliRunner().invoke(cli, ["export"]).stdout_bytes == path.read_bytes()
    engine = make_engine(empty)
    try:
        actors = {r["actor"] for r in iter_records(engine) if r["action"] == "transfer.import"}
    finally:
        engine.dispose()
    assert actors == {f"cli:{getpass.getuser()}"}
    header = tmp_path / "header.jsonl"
    header.write_bytes(b'{"record":"header","format":"other","version":1}\n')
    wrong = CliRunner().invoke(cli, ["import", str(header)])
    assert wrong.exit_code == 2 and "TRANSFER_FORMAT" in wrong.stderr


def test_a_named_record_with_other_fields_updates_the_stored_one(
    demo_db: str, tmp_path: Path
) -> None:
    old = b'"email":"chloe.roux@example.fr"'
    data = export(demo_db).replace(old, b'"email":"chloe.roux@montreuil.example.fr"')
    report = import_(demo_db, data)
    assert report.refused == [] and report.added == {} and report.updated == 1
    assert report.written == ["mairie-montreuil"]
    assert export(demo_db) == data
    assert import_(demo_db, data).updated == 0  # and then nothing more
    # What an import cannot change: a group's parent (TRANSFER_CONFLICT), the organisation kept.
    moved = data.replace(
        b'"code":"CCAS-ACCUEIL","label":"Accueil","convention":'
        b'"CONV-mairie-montreuil-931","parent":"CCAS"',
        b'"code":"CCAS-ACCUEIL","label":"Accueil","convention":'
        b'"CONV-mairie-montreuil-931","parent":null',
    )
    assert moved != data
    refused = import_(demo_db, moved)
    assert [r.code for r in refused.refused] == ["TRANSFER_CONFLICT"]
    assert export(demo_db) == data


def test_a_refused_caf_leaves_the_network_untouched(demo_db: str, empty: str) -> None:
    data = export(demo_db).replace(
        b'{"record":"caf","code":"131","name":"Caf des Bouches-du-Rh\xc3\xb4ne",'
        b'"opens_on":"2000-01-01","closes_on":null}',
        b'{"record":"caf","code":"131","name":"Caf des Bouches-du-Rh\xc3\xb4ne",'
        b'"opens_on":"2000-01-01","closes_on":"1999-01-01"}',
    )
    report = import_(empty, data)
    assert (report.refused[0].line, report.refused[0].code) == (2, "INVALID_DATES")
    assert "network" in report.untouched
    # Without their Cafs, the organisations are refused too (UNKNOWN_CAF), nothing written.
    assert {r.code for r in report.refused[1:]} == {"UNKNOWN_CAF"}
    assert export(empty) == data.splitlines(keepends=True)[0]


def test_a_line_of_the_network_that_is_no_record_leaves_the_network_untouched(
    demo_db: str, empty: str
) -> None:
    data = export(demo_db).replace(b'"email":"op.caf751@example.fr"', b'"email":"op caf751"')
    report = import_(empty, data)
    assert (report.refused[0].line, report.refused[0].code) == (6, "VALIDATION_ERROR")
    assert "network" in report.untouched
    assert b'"record":"caf"' not in export(empty)
