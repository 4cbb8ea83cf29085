"""The fixtures the auditors' API tests of this folder (test_auditor_*.py) share: the app over
the demo with a real decision log, its audit trail starting from the genesis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pdp.web.app import create_app
from pdp.web.container import services

from support.audit import reset_audit_head
from support.auditor import Portal
from support.constants import SECRET


@pytest.fixture
def fresh_audit_head(request: pytest.FixtureRequest, backend: str) -> None:
    """Work around ``support.databases.reset_postgres``, which empties ``audit_log`` but keeps
    the previous test's chain head (see tests/records/test_audit_chain.py). ``portal`` asks for
    it first, so that it runs before ``demo_db``."""
    if backend == "postgres":
        reset_audit_head(request.getfixturevalue("postgres_database"))


@pytest.fixture
def portal(
    fresh_audit_head: None, demo_db: str, clean_env: None, tmp_path: Path
) -> Iterator[Portal]:
    """The app over the demo, with a WalLog in ``tmp_path`` and its Shipper (shipped by hand:
    the background interval is an hour)."""
    app = create_app(
        {
            "database_url": demo_db,
            "decision_log": "buffered",
            "decision_log_dir": str(tmp_path / "decision-log"),
            "decision_log_ship_interval": 3600,
            "refresh_interval": 0,
            "verify_orgs": 0,
            "jwt_secret": SECRET,
        }
    )
    try:
        yield Portal(app)
    finally:
        services(app).decision_log.close()
        services(app).db.dispose()
