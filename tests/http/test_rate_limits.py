"""The size limits and the per-client rate limit, each a clear 4xx.

The rate limit counts per client (the key's name), in memory or in Redis shared by every
worker; over it, 429 RATE_LIMITED with Retry-After; Redis down → counted in memory, no 500.
"""

from __future__ import annotations

import os

import pytest

from pdp.core.errors import ConfigurationError

from support.api_clients import error_code, store
from support.constants import MakeApp

REDIS_ENV = "PDP_TEST_REDIS_URL"


# -- Limits: each a clear 4xx ------------------------------------------------------------------


def test_size_limits_answer_a_clear_4xx(make_app: MakeApp) -> None:
    client = make_app(max_body_bytes=2000, batch_max=3, page_max=5)[0].test_client()
    big = client.post(
        "/v1/check", data=b'{"user": "' + b"x" * 3000 + b'"}', content_type="application/json"
    )
    assert (big.status_code, error_code(big)) == (413, "PAYLOAD_TOO_LARGE")
    batch = client.post("/v1/check/batch", json={"checks": [{"user": "a", "service": "cdap"}] * 4})
    assert (batch.status_code, error_code(batch)) == (400, "BATCH_TOO_LARGE")
    page = client.get("/v1/services/cdap/users?limit=6")
    assert (page.status_code, error_code(page)) == (400, "PAGE_TOO_LARGE")
    long_user = client.post("/v1/check", json={"user": "u" * 121, "service": "cdap"})
    assert long_user.status_code == 400
    long_path = client.get(f"/v1/users/{'u' * 121}/permissions")
    assert (long_path.status_code, error_code(long_path)) == (400, "VALUE_TOO_LONG")
    long_service = client.get(f"/v1/services/{'s' * 41}/users")
    assert (long_service.status_code, error_code(long_service)) == (400, "VALUE_TOO_LONG")


def test_the_rate_limit_counts_per_client(make_app: MakeApp, demo_db: str) -> None:
    app, _ = make_app(rate_limit="3/minute")
    other_key, _ = store(demo_db).add("other-front", ["cdap"], "cli:tester")
    client = app.test_client()
    body = {"user": "bruno.petit", "service": "cdap"}
    assert [client.post("/v1/check", json=body).status_code for _ in range(3)] == [200] * 3
    over = client.post("/v1/check", json=body)
    assert (over.status_code, error_code(over)) == (429, "RATE_LIMITED")
    assert int(over.headers["Retry-After"]) > 0
    assert over.get_json()["error"]["message"]
    # Another front-end has its own count; the probes are never limited.
    other = client.post("/v1/check", json=body, headers={"X-Api-Key": other_key})
    assert other.status_code == 200
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))


def test_a_bad_rate_limit_setting_stops_the_start(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError, match="PDP_RATE_LIMIT"):
        make_app(rate_limit="lots")
    with pytest.raises(ConfigurationError, match="PDP_RATE_LIMIT_STORAGE"):
        make_app(rate_limit="3/minute", rate_limit_storage="mongodb://x")


@pytest.fixture
def redis_url() -> str:
    """A Redis database for the test, emptied; skipped unless PDP_TEST_REDIS_URL is set, and
    failing if it is set but Redis does not answer (CI asked for it)."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set: Redis tests skipped")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).flushdb()
    except redis.RedisError as exc:
        pytest.fail(f"{REDIS_ENV} is set but Redis is unreachable at {url}: {exc}", pytrace=False)
    return url


def test_workers_share_one_count_in_redis(make_app: MakeApp, redis_url: str) -> None:
    # Two apps, like two workers (or two instances): one limit for the client, across both.
    settings = {"rate_limit": "3/minute", "rate_limit_storage": redis_url}
    first, second = make_app(**settings)[0].test_client(), make_app(**settings)[0].test_client()
    body = {"user": "bruno.petit", "service": "cdap"}
    statuses = [c.post("/v1/check", json=body).status_code for c in (first, second, first)]
    assert statuses == [200, 200, 200]
    over = second.post("/v1/check", json=body)
    assert (over.status_code, error_code(over)) == (429, "RATE_LIMITED")


def test_redis_down_falls_back_to_memory_without_errors(make_app: MakeApp) -> None:
    app, _ = make_app(rate_limit="2/minute", rate_limit_storage="redis://127.0.0.1:1/0")
    client = app.test_client()
    body = {"user": "bruno.petit", "service": "cdap"}
    statuses = [client.post("/v1/check", json=body).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_local_windows_reset_each_window_and_stay_bounded() -> None:
    from pdp.web.api.rate_limit import LocalWindows

    now = [1000.0]
    windows = LocalWindows([(2, 1), (3, 60)], clock=lambda: now[0])  # 2/second and 3/minute
    assert [windows.hit("a"), windows.hit("a")] == [None, None]
    assert windows.hit("a") == 1  # third in the same second: wait for the next second
    assert windows.hit("b") is None  # another caller, its own count
    now[0] = 1001.0
    assert windows.hit("a") is None  # a new second; the minute has 3 now
    now[0] = 1002.0
    assert windows.hit("a") == 18  # the minute window [960, 1020) is full: 1020 - 1002
