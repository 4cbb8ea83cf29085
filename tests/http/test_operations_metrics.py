"""The operations kit's metrics: what is running (``pdp_build_info``), the requests refused by
the rate limit, and when the database last answered (checked on each scrape of ``/metrics``).
"""

from __future__ import annotations

import platform
import time

from prometheus_client import REGISTRY
from sqlalchemy.exc import OperationalError

from pdp.observability.metrics import package_version
from pdp.web.container import services

from support.actors import bearer
from support.constants import OPERATOR, SECRET, MakeApp


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_build_info_names_the_version_the_commit_and_python(make_app: MakeApp) -> None:
    app, _ = make_app(build_commit="0123abc")
    text = app.test_client().get("/metrics").get_data(as_text=True)
    version = package_version()
    assert version not in ("", "unknown")
    python = platform.python_version()
    wanted = f'pdp_build_info{{commit="0123abc",python="{python}",version="{version}"}} 1.0'
    assert wanted in text
    assert text.count("pdp_build_info{") == 1  # one series: the previous app's is gone
    make_app()
    assert sample("pdp_build_info", version=version, commit="unknown", python=python) == 1


def test_rate_limited_requests_are_counted_by_kind_of_key(make_app: MakeApp) -> None:
    app, _ = make_app(rate_limit="1/minute", jwt_secret=SECRET)
    client = app.test_client()
    before = {k: sample("pdp_rate_limited_requests_total", caller=k) for k in ("client", "user")}
    address = sample("pdp_rate_limited_requests_total", caller="address")
    body = {"user": "bruno.petit", "service": "cdap"}
    assert [client.post("/v1/check", json=body).status_code for _ in range(3)] == [200, 429, 429]
    assert sample("pdp_rate_limited_requests_total", caller="client") == before["client"] + 2
    # The administration API is counted per address (no key; the view reads the token).
    client.environ_base.pop("HTTP_X_API_KEY")
    answers = [client.get("/v1/organisations", headers=bearer(OPERATOR)) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 429]
    assert sample("pdp_rate_limited_requests_total", caller="address") == address + 1
    assert sample("pdp_rate_limited_requests_total", caller="user") == before["user"]


def test_a_scrape_records_when_the_database_last_answered(make_app: MakeApp) -> None:
    app, _ = make_app()
    client = app.test_client()
    assert client.get("/metrics").status_code == 200
    reached = sample("pdp_database_ok_timestamp_seconds")
    assert time.time() - reached < 5
    # The database lost: the scrape still answers, and the timestamp no longer moves.
    db = services(app).db

    def refuse(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    original = db.connect
    db.connect = refuse  # type: ignore[method-assign,assignment]
    try:
        time.sleep(0.01)
        text = client.get("/metrics").get_data(as_text=True)
    finally:
        db.connect = original  # type: ignore[method-assign]
    assert "pdp_database_ok_timestamp_seconds" in text
    assert sample("pdp_database_ok_timestamp_seconds") == reached
    assert client.get("/readyz").status_code == 200
    assert sample("pdp_database_ok_timestamp_seconds") > reached
