"""The fixture the administration tests of this folder share: the API acting as anyone, over
a private copy of the demo, its audit trail and decision log known."""

from __future__ import annotations

import pytest

from pdp.records.audit_trail import AuditReader
from pdp.web.container import services

from support.actors import Api
from support.constants import SECRET, MakeApp


@pytest.fixture
def api(make_app: MakeApp) -> Api:
    """The API over a private copy of the demo (sqlite, and postgres when asked)."""
    app, log = make_app(jwt_secret=SECRET)
    audit = AuditReader(services(app).db)
    return Api(app.test_client(), audit, log)
