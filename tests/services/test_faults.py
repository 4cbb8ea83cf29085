"""Faults: the database failing in the middle of a write, and the engine failing while deciding.

The database (one business action = one transaction): a SQLAlchemy event on the
app's own engine (``services(app).db``) makes the driver raise ``OperationalError``
(a lost connection, a full disk, a lock timeout) at the Nth statement of an administrative
write, for every N from the write's first statement (the revision bump) to its last, and at its
COMMIT. Each time: the answer is a 503 with a stable code (never a 500, never a 2xx), nothing is
half-written (a digest of every table, the audit trail and the revision row included, is the
same as before), the engine still serves the revision it served, and the same write succeeds
once the fault is gone, with its audit records and an intact chain (R-ADM-7).

The engine (R-DEC-2: any error while deciding denies): batch items deny with ENGINE_ERROR like
single checks (tests/http/test_api.py covers those), the public admin check and every administrative
write refuse with ENGINE_ERROR, the listings answer an error code rather than a 500, and a
store unreachable for longer than ``max_staleness`` refuses administration with
POLICY_UNAVAILABLE (the decision API's side of it is in tests/http/test_api.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import Base
from pdp.engine.index import Index
from pdp.engine.snapshot import Snapshot
from pdp.records.audit_trail import AuditChain, AuditReader
from pdp.records.decision_log import MemoryLog
from pdp.web.container import services

from support.actors import Api
from support.constants import CONVENTION, SECRET, MakeApp
from support.constants import MAIRIE as BASE
from support.constants import MAIRIE_CODE as ORG

STORE_DOWN = "STORE_UNAVAILABLE"  # the 503 code of a write the database failed


def _person(login: str) -> dict[str, str]:
    return {"login": login, "first_name": "Zoé", "last_name": "Durand", "email": f"{login}@x.fr"}


@dataclass(frozen=True)
class Write:
    """One administrative write valid on the demo as loaded, and its success status."""

    actor: str
    method: str
    path: str
    body: dict[str, Any] | None
    status: int


def _writes(today: dt.date) -> dict[str, Write]:
    """The kinds of writes faulted: one of each family of the administration API."""
    return {
        # fiche 1, R-USR-1
        "create-user": Write("alice.martin", "POST", f"{BASE}/users", _person("zoe.durand"), 201),
        # fiche 7, R-ADM-3: the group and its manager created in one transaction
        "create-group-new-manager": Write(
            "alice.martin",
            "POST",
            f"{BASE}/groups",
            {
                "code": "RSA",
                "label": "Instruction RSA",
                "convention": CONVENTION,
                "manager": {"new_user": _person("yann.leblanc")},
            },
            201,
        ),
        # "créer un sous-groupe", by the manager of the parent
        "create-subgroup": Write(
            "bruno.petit",
            "POST",
            f"{BASE}/groups",
            {
                "code": "CCAS-RSA",
                "label": "RSA",
                "parent": "CCAS",
                "manager": {"login": "chloe.roux"},
            },
            201,
        ),
        # fiche 12, R-GRP-4
        "assign-role": Write(
            "bruno.petit",
            "POST",
            f"{BASE}/groups/CCAS-ACCUEIL/roles",
            {"service": "cdap", "role": "T18"},
            201,
        ),
        # fiche 13, R-GRP-4: cascades to CCAS-ACCUEIL and CCAS-INSTRUCTION
        "remove-role": Write(
            "alice.martin", "DELETE", f"{BASE}/groups/CCAS/roles/cdap/T1", None, 200
        ),
        # fiche 11, R-GRP-2: sub-groups close, memberships end
        "close-group": Write("alice.martin", "POST", f"{BASE}/groups/CCAS/close", None, 200),
        # fiche 16, R-ADM-3
        "replace-manager": Write(
            "alice.martin",
            "PUT",
            f"{BASE}/groups/CCAS-ACCUEIL/manager",
            {"login": "chloe.roux", "replaces": "bruno.petit"},
            200,
        ),
        # fiche 4, R-MEM-1
        "attach": Write(
            "bruno.petit",
            "POST",
            f"{BASE}/users/emma.garnier/memberships",
            {"group": "CCAS-ACCUEIL"},
            201,
        ),
        # fiche 3, R-USR-4
        "close-user": Write(
            "alice.martin", "PATCH", f"{BASE}/users/chloe.roux", {"closes_on": str(today)}, 200
        ),
        # R-ADM-1, R-CON-4: the designated admin created in the same transaction
        "designate-admin": Write(
            "op.caf751", "POST", f"{BASE}/admins", {"new_user": _person("xavier.roy")}, 201
        ),
    }


# -- the fault -----------------------------------------------------------------------------------

# The first statement of every write: bump_revision's UPDATE, which takes the revision lock.
_BUMP = re.compile(r"^\s*UPDATE policy_revision SET revision\s*=", re.IGNORECASE)
_IN_WRITE = "pdp_faults_in_write"


class StoreFault:
    """Makes the driver fail at the Nth statement of the next write, or at its COMMIT.

    Statements are counted on the write's connection only, from the revision bump (position 1)
    to the last before COMMIT: the engine's own reads (refresh, on other connections) are not
    part of the write, and already fail closed (tests/http/test_api.py).
    """

    def __init__(self, db: Engine) -> None:
        self.db = db
        self.at: int | None = None  # fail the statement at this position
        self.at_commit = False  # fail the COMMIT
        self.statements: list[str] = []
        self.injected = 0
        event.listen(db, "begin", self._begin)
        event.listen(db, "before_cursor_execute", self._before)
        event.listen(db, "commit", self._commit)

    def remove(self) -> None:
        event.remove(self.db, "begin", self._begin)
        event.remove(self.db, "before_cursor_execute", self._before)
        event.remove(self.db, "commit", self._commit)

    def arm(self, at: int | None = None, at_commit: bool = False) -> None:
        self.at, self.at_commit, self.statements = at, at_commit, []

    def _begin(self, conn: Connection) -> None:
        conn.info.pop(_IN_WRITE, None)

    def _before(self, conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if _BUMP.match(statement):
            conn.info[_IN_WRITE] = True
        if not conn.info.get(_IN_WRITE):
            return
        self.statements.append(statement)
        if len(self.statements) == self.at:
            self.injected += 1
            # The driver's own exception: SQLAlchemy wraps it as it would a real failure.
            raise conn.dialect.loaded_dbapi.OperationalError(
                f"injected fault at statement {self.at} (disk I/O error)"
            )

    def _commit(self, conn: Connection) -> None:
        if conn.info.pop(_IN_WRITE, None) and self.at_commit:
            self.injected += 1
            raise OperationalError(
                "COMMIT",
                None,
                conn.dialect.loaded_dbapi.OperationalError("injected fault at COMMIT"),
            )


def digest(db: Engine) -> dict[str, str]:
    """A hash of every row of every table (audit trail and revision row included)."""
    out = {}
    with db.connect() as conn:
        for table in Base.metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            rows = conn.execute(select(table).order_by(*order)).all()
            out[table.name] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


@pytest.fixture
def direct(demo_db: str) -> Iterator[Engine]:
    """An engine on the demo database of the test, outside any app."""
    engine = make_engine(demo_db)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("kind", list(_writes(dt.date.today())))
def test_a_write_the_database_fails_midway_leaves_nothing_and_answers_503(
    make_app: MakeApp, direct: Engine, today: dt.date, kind: str
) -> None:
    """Every statement position of the write, then its COMMIT, fails in turn: 503 with a stable
    code, every table as before, the engine's revision unchanged; then the write succeeds
    with its audit records (one transaction per write, R-ADM-7)."""
    write = _writes(today)[kind]
    app, _ = make_app(jwt_secret=SECRET)
    api = Api(app.test_client())
    engine = services(app).decisions.engine
    fault = StoreFault(services(app).db)
    before, revision = digest(direct), engine.revision

    def refused(position: str) -> None:
        response = api.call(write.actor, write.method, write.path, write.body)
        body = response.get_json()
        assert (response.status_code, body["error"]["code"]) == (503, STORE_DOWN), (position, body)
        assert body["error"]["message"]
        assert digest(direct) == before, f"{kind}: half-written after a fault at {position}"
        assert engine.revision == revision == api.revision()

    # The COMMIT first: the write runs to its end, which counts its statements.
    fault.arm(at_commit=True)
    refused("COMMIT")
    statements = list(fault.statements)
    assert len(statements) >= 5 and _BUMP.match(statements[0]), statements
    for position in range(1, len(statements) + 1):
        fault.arm(at=position)
        refused(f"statement {position}/{len(statements)}: {statements[position - 1][:60]}")
        assert len(fault.statements) == position  # it stopped at the fault
    assert fault.injected == len(statements) + 1
    print(f"\nfaults[{kind}]: {len(statements)} statements + COMMIT, each failed once")

    fault.remove()
    reader = AuditReader(direct)
    response = api.call(write.actor, write.method, write.path, write.body)
    assert response.status_code == write.status, response.get_json()
    assert response.get_json()["revision"] == revision + 1 == engine.revision
    assert digest(direct) != before
    assert reader.events and {e.revision for e in reader.events} == {revision + 1}
    assert AuditChain().verify(direct).ok


# -- the engine failing while deciding (R-DEC-2) ---------------------------------------------


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("boom: a bug or corrupt data deep in the engine")


@pytest.fixture
def exploding(make_app: MakeApp, monkeypatch: pytest.MonkeyPatch) -> tuple[Api, MemoryLog]:
    """An app whose index fails every decision and listing, and whose administrative
    decisions fail too (``pdp.engine.rules.authorise``, as the engine calls it)."""
    app, log = make_app(jwt_secret=SECRET)
    monkeypatch.setattr(Index, "decide", _boom)
    monkeypatch.setattr(Index, "permissions", _boom)
    monkeypatch.setattr("pdp.engine.policy.authorise", _boom)
    monkeypatch.setattr("pdp.services.decisions.index_service_users", _boom)
    return Api(app.test_client()), log


def test_batch_items_deny_with_engine_error(exploding: tuple[Api, MemoryLog]) -> None:
    """R-DEC-2 per item: each valid item is denied with ENGINE_ERROR and logged so; a bad item
    still answers its own error."""
    api, log = exploding
    checks = [
        {"user": "bruno.petit", "service": "cdap", "role": "T18"},
        {"user": "chloe.roux", "service": "cdap", "role": "T99"},
        {"user": "nadia.benali", "service": "cdap", "caf": "751"},
    ]
    response = api.client.post("/v1/check/batch", json={"checks": checks})
    assert response.status_code == 200, response.get_json()
    first, bad, third = response.get_json()["results"]
    for item in (first, third):
        assert (item["allowed"], item["reason"]["code"]) == (False, "ENGINE_ERROR")
        assert item["grants"] == [] and item["reason"]["message"]
    assert bad["error"]["code"] == "UNKNOWN_ROLE"
    assert [e["reason"] for e in log.entries[-2:]] == ["ENGINE_ERROR", "ENGINE_ERROR"]


def test_admin_check_and_writes_refuse_with_engine_error(
    exploding: tuple[Api, MemoryLog], direct: Engine
) -> None:
    """R-ADM-7 + R-DEC-2: the public admin check denies with ENGINE_ERROR, and a write the
    engine cannot authorise is refused (403 ENGINE_ERROR) with nothing written."""
    api, log = exploding
    response = api.client.post(
        "/v1/admin/check",
        json={"actor": "alice.martin", "action": "user.create", "target": f"organisation:{ORG}"},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["allowed"], body["reason"]["code"]) == (False, "ENGINE_ERROR")
    assert log.entries[-1]["reason"] == "ENGINE_ERROR"
    before = digest(direct)
    api.error("alice.martin", "POST", f"{BASE}/users", 403, "ENGINE_ERROR", _person("zoe.durand"))
    assert digest(direct) == before


@pytest.mark.parametrize(
    ("url", "who"),
    [
        pytest.param("/v1/users/chloe.roux/permissions", None, id="permissions"),
        pytest.param("/v1/services/cdap/users", None, id="service-users"),
        pytest.param(f"{BASE}/users/chloe.roux", "alice.martin", id="user-detail"),
    ],
)
def test_listings_answer_a_code_when_the_engine_fails(
    exploding: tuple[Api, MemoryLog], url: str, who: str | None
) -> None:
    """R-DEC-2, R-DEC-4: a listing the engine fails to build fails closed with a stable code
    (503 ENGINE_ERROR), not a 500 INTERNAL_ERROR."""
    api, _ = exploding
    response = api.call(who, "GET", url)
    body = response.get_json()
    # The admin route's own authorisation fails first (403 ENGINE_ERROR: refused, R-ADM-7).
    expected = 403 if who else 503
    assert (response.status_code, body["error"]["code"]) == (expected, "ENGINE_ERROR"), body


def test_the_user_detail_fails_closed_when_only_its_listing_fails(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R-DEC-2: authorised, but the engine fails building the user's services: 503
    ENGINE_ERROR, not a 500."""
    app, _ = make_app(jwt_secret=SECRET)
    monkeypatch.setattr(Index, "permissions", _boom)
    response = Api(app.test_client()).call("alice.martin", "GET", f"{BASE}/users/chloe.roux")
    body = response.get_json()
    assert (response.status_code, body["error"]["code"]) == (503, "ENGINE_ERROR"), body


def test_the_afas_notice_of_a_manager_change_cannot_500(
    exploding: tuple[Api, MemoryLog], monkeypatch: pytest.MonkeyPatch, direct: Engine
) -> None:
    """R-AFAS-4's notice asks the index whether the replaced manager keeps afas:habiliter; an
    error there must not turn a valid manager change into a 500."""
    api, _ = exploding
    monkeypatch.undo()  # only the index's decide fails: the write itself is authorised
    monkeypatch.setattr(Index, "decide", _boom)
    response = api.call(
        "alice.martin",
        "PUT",
        f"{BASE}/groups/CCAS-ACCUEIL/manager",
        {"login": "chloe.roux", "replaces": "bruno.petit"},
    )
    assert response.status_code < 500, response.get_json()


# -- a stale policy (R-DEC-2: POLICY_UNAVAILABLE) ----------------------------------------------


class UnreachableStore:
    """The engine's snapshot source, cut off (a fake over the real one)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def load(self, organisation_ids: Iterable[int] | None = None) -> Snapshot:
        raise ConnectionError("store unreachable")

    def changes_since(self, revision: int) -> list[tuple[int, int | None]]:
        raise ConnectionError("store unreachable")


def test_a_stale_policy_refuses_administration(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch, direct: Engine
) -> None:
    """Once the engine has not read the store for longer than max_staleness: the admin check
    denies with POLICY_UNAVAILABLE, writes answer 503 POLICY_UNAVAILABLE with nothing written,
    and batch items deny with POLICY_UNAVAILABLE; all recover when the store is back."""
    app, _ = make_app(jwt_secret=SECRET, max_staleness=0.2)
    api = Api(app.test_client())
    engine = services(app).decisions.engine
    question = {"actor": "alice.martin", "action": "user.create", "target": f"organisation:{ORG}"}
    assert api.client.post("/v1/admin/check", json=question).get_json()["allowed"] is True
    real = engine.source
    monkeypatch.setattr(engine, "source", UnreachableStore(real))
    time.sleep(0.3)
    body = api.client.post("/v1/admin/check", json=question).get_json()
    assert (body["allowed"], body["reason"]["code"]) == (False, "POLICY_UNAVAILABLE")
    before = digest(direct)
    api.error(
        "alice.martin", "POST", f"{BASE}/users", 503, "POLICY_UNAVAILABLE", _person("zoe.durand")
    )
    assert digest(direct) == before
    batch = api.client.post(
        "/v1/check/batch", json={"checks": [{"user": "chloe.roux", "service": "cdap"}] * 2}
    ).get_json()["results"]
    assert [i["reason"]["code"] for i in batch] == ["POLICY_UNAVAILABLE"] * 2
    monkeypatch.setattr(engine, "source", real)
    api.ok("alice.martin", "POST", f"{BASE}/users", _person("zoe.durand"), status=201)
