"""A person's file (GDPR art. 15, R-CNIL-15..17): ``GET /v1/users/<login>/file`` and
``pdp person export LOGIN``, over the demo (SQLite, and PostgreSQL when asked)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import Engine, insert

from pdp.adapters.sql.models import DecisionRecord, LastUse
from pdp.cli import cli
from pdp.records.retention import Retention
from pdp.services import person_file
from pdp.web.api.person_file import PersonFileDocument
from pdp.web.container import services

from support.actors import Api
from support.admin_bodies import new_user
from support.constants import MAIRIE, MANAGER, OPERATOR, PARTNER_ADMIN, SECRET, MakeApp


@pytest.fixture
def portal(make_app: MakeApp) -> Iterator[tuple[Api, Flask]]:
    app, log = make_app(jwt_secret=SECRET)
    yield Api(app.test_client(), log=log), app


def logged(db: Engine, user: str, *moments: dt.datetime) -> list[str]:
    """Decisions about ``user`` in the table, as the shipper leaves them; their ids."""
    ids = []
    with db.begin() as conn:
        for moment in moments:
            decision_id = secrets.token_hex(16)
            entry = {
                "decision_id": decision_id,
                "ts": moment.timestamp(),
                "kind": "check",
                "user": user,
                "service": "cdap",
                "role": "T18",
                "allowed": True,
                "reason": "ALLOWED",
                "revision": 1,
            }
            conn.execute(
                insert(DecisionRecord).values(
                    decision_id=decision_id,
                    ts_us=int(moment.timestamp() * 1_000_000),
                    kind="check",
                    user=user,
                    service="cdap",
                    allowed=True,
                    reason="ALLOWED",
                    revision=1,
                    entry=orjson.dumps(entry).decode(),
                )
            )
            ids.append(decision_id)
    return ids


def read_file(api: Api, who: str, login: str) -> dict[str, object]:
    r = api.call(who, "GET", f"/v1/users/{login}/file")
    assert r.status_code == 200, r.data[:300]
    assert r.mimetype == "application/json"
    assert r.is_streamed  # a generator, sent chunk by chunk
    assert f'filename="person-{login}.json"' in r.headers["Content-Disposition"]
    document: dict[str, object] = orjson.loads(r.data)
    PersonFileDocument.model_validate(document)  # the declared model
    return document


def test_an_operator_reads_the_whole_file_of_a_person(
    portal: tuple[Api, Flask], today: dt.date
) -> None:
    # R-CNIL-15: account, memberships and rights over time, acts by and on them, retained
    # decisions, last uses: one document.
    api, app = portal
    db = services(app).db
    now = dt.datetime.now(dt.UTC)
    mine = logged(db, MANAGER, now - dt.timedelta(days=3), now)
    logged(db, "chloe.roux", now)  # someone else's
    with db.begin() as conn:
        conn.execute(insert(LastUse).values(login=MANAGER, service="cdap", role="T18", day=today))
    api.write(MANAGER, "POST", f"{MAIRIE}/users", new_user("zoe.durand"), status=201)

    document = read_file(api, OPERATOR, MANAGER)
    assert list(document) == [
        "login",
        "generated_at",
        "retention_months",
        "account",
        "memberships",
        "afas_profiles",
        "partner_admin",
        "manages",
        "last_uses",
        "audit_by",
        "audit_on",
        "decisions",
    ]
    file = PersonFileDocument.model_validate(document)
    assert file.account.login == MANAGER and file.account.organisation == "mairie-montreuil"
    assert file.account.first_name and file.account.email  # the file holds the names
    groups = {m.group: m for m in file.memberships}
    assert {"CCAS", "CCAS-INSTRUCTION"} <= set(groups)
    assert ("cdap", "T18") in {(r.service, r.role) for r in groups["CCAS-INSTRUCTION"].roles}
    assert {m.group for m in file.manages} >= {"CCAS", "CCAS-ACCUEIL", "CCAS-INSTRUCTION"}
    assert [(u.service, u.role, u.day) for u in file.last_uses] == [
        ("cdap", "T18", today.isoformat())
    ]
    assert file.retention_months == 12
    assert [d["decision_id"] for d in file.decisions] == mine  # his only, oldest first
    assert all(d["at_time"] for d in file.decisions)
    by = [r["target"] for r in file.audit_by]
    assert "user:zoe.durand" in by and all(r["actor"] == MANAGER for r in file.audit_by)
    on = file.audit_on
    assert on and all(f"user:{MANAGER}" in (r["target"], r["related"]) for r in on)
    assert [r["seq"] for r in on] == sorted(r["seq"] for r in on)
    admin = PersonFileDocument.model_validate(read_file(api, OPERATOR, PARTNER_ADMIN))
    assert [a.organisation for a in admin.partner_admin] == ["mairie-montreuil"]
    assert admin.memberships == []  # a partner admin holds no business role (R-ADM-2)
    # The read itself is an administrative decision, logged (R-ADM-7).
    assert api.log is not None
    assert any(e.get("action") == "log.read" for e in api.log.entries)


def test_only_operators_read_a_persons_file(portal: tuple[Api, Flask]) -> None:
    # R-CNIL-15: a partner admin, the person themself, no one signed in: refused, nothing sent.
    api, _app = portal
    for who in (PARTNER_ADMIN, MANAGER):
        r = api.call(who, "GET", f"/v1/users/{MANAGER}/file")
        assert r.status_code == 403, r.data[:300]
        assert r.get_json()["error"]["code"]
    r = api.call(None, "GET", f"/v1/users/{MANAGER}/file")
    assert r.status_code == 401
    api.error(OPERATOR, "GET", "/v1/users/nobody.here/file", 404, "UNKNOWN_USER")


def test_the_file_streams_in_batches(
    portal: tuple[Api, Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    # R-CNIL-15: the decisions are read by a cursor, in batches, never all at once.
    api, app = portal
    monkeypatch.setattr(person_file, "_BATCH", 10)
    now = dt.datetime.now(dt.UTC)
    ids = logged(services(app).db, MANAGER, *(now - dt.timedelta(seconds=s) for s in range(55)))
    r = api.client.get(f"/v1/users/{MANAGER}/file", headers=api.headers(OPERATOR), buffered=False)
    chunks = list(r.response)
    assert len(chunks) >= 6 + 8  # 6 batches of decisions, and the document's other parts
    assert all(len(c) < 20_000 for c in chunks)
    document = orjson.loads(b"".join(chunks))
    assert sorted(d["decision_id"] for d in document["decisions"]) == sorted(ids)


def test_pruned_decisions_leave_the_file_the_audit_trail_stays(
    portal: tuple[Api, Flask],
) -> None:
    # R-CNIL-16 (with R-CNIL-11, R-CNIL-12): after pruning, the file holds only the decisions
    # still retained; the administrative acts on the person are all still there.
    api, app = portal
    db = services(app).db
    old = logged(db, MANAGER, dt.datetime(2020, 3, 1, tzinfo=dt.UTC))
    young = logged(db, MANAGER, dt.datetime.now(dt.UTC))
    before = read_file(api, OPERATOR, MANAGER)
    assert {d["decision_id"] for d in before["decisions"]} == set(old + young)  # type: ignore[attr-defined]
    Retention(db, 12).prune()
    after = read_file(api, OPERATOR, MANAGER)
    assert [d["decision_id"] for d in after["decisions"]] == young  # type: ignore[attr-defined]
    assert after["audit_on"] == before["audit_on"]


def test_cli_person_export(portal: tuple[Api, Flask], demo_db: str, tmp_path: Path) -> None:
    # R-CNIL-15: `pdp person export LOGIN` writes the same document as the API.
    api, _app = portal
    env = {"PDP_DATABASE_URL": demo_db}
    runner = CliRunner()
    out = tmp_path / "file.json"
    done = runner.invoke(cli, ["person", "export", MANAGER, "--output", str(out)], env=env)
    assert done.exit_code == 0, done.output
    exported = orjson.loads(out.read_bytes())
    served = read_file(api, OPERATOR, MANAGER)
    for document in (exported, served):
        del document["generated_at"]
    assert exported == served
    unknown = runner.invoke(cli, ["person", "export", "nobody.here"], env=env)
    assert unknown.exit_code == 2
    assert "UNKNOWN_USER" in unknown.output
