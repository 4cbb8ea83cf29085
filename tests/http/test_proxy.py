"""Behind a reverse proxy (R-OPS-1): with ``PDP_TRUSTED_PROXIES``, the caller's address is the
one the trusted proxy forwards (``X-Forwarded-For``), for the rate limit's per-address count,
the decision log's ``client`` and the logs; a header sent by anyone else is ignored, and the
console's login header is still believed from the proxy's own address only.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request

from pdp.core.config import Settings
from pdp.core.errors import ConfigurationError
from pdp.web.proxy_trust import ForwardedFor, networks, trust_forwarded

from support.actors import bearer
from support.api_clients import error_code
from support.constants import OPERATOR, SECRET, MakeApp

PROXY = {"REMOTE_ADDR": "10.0.0.5"}  # nginx, in the trusted range below
TRUSTED = "10.0.0.0/24"


def seen(environ: dict[str, Any], proxies: str = TRUSTED) -> tuple[str, str, str | None]:
    """What an app behind ForwardedFor sees of ``environ``: address, scheme, the proxy's."""
    got: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        got.update(env)
        return []

    base = {"REMOTE_ADDR": "10.0.0.5", "wsgi.url_scheme": "http"}
    ForwardedFor(app, networks("TRUSTED_PROXIES", proxies))({**base, **environ}, None)  # type: ignore[arg-type]
    return got["REMOTE_ADDR"], got["wsgi.url_scheme"], got.get("pdp.proxy_peer")


def test_r_ops_1_the_trusted_proxy_names_the_caller() -> None:
    forwarded = {"HTTP_X_FORWARDED_FOR": "203.0.113.9", "HTTP_X_FORWARDED_PROTO": "https"}
    assert seen(forwarded) == ("203.0.113.9", "https", "10.0.0.5")
    # What the caller wrote left of what nginx appended is not believed; trusted hops are
    # skipped (a proxy chain inside the trusted range).
    chain = {"HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.9, 10.0.0.7"}
    assert seen(chain)[0] == "203.0.113.9"
    # No header: the proxy itself; a scheme other than http/https is ignored.
    assert seen({"HTTP_X_FORWARDED_PROTO": "gopher"}) == ("10.0.0.5", "http", "10.0.0.5")


def test_r_ops_1_a_forwarded_header_from_anyone_else_is_ignored() -> None:
    spoofed = {"REMOTE_ADDR": "198.51.100.4", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    spoofed["HTTP_X_FORWARDED_PROTO"] = "https"
    assert seen(spoofed) == ("198.51.100.4", "http", None)
    # IPv6 ranges and peers work the same way.
    v6 = {"REMOTE_ADDR": "fd00::2", "HTTP_X_FORWARDED_FOR": "2001:db8::1"}
    assert seen(v6, "fd00::/64")[0] == "2001:db8::1"


def test_r_ops_1_no_trusted_proxy_leaves_the_app_unwrapped() -> None:
    app = Flask(__name__)
    wsgi = app.wsgi_app
    assert trust_forwarded(wsgi, Settings()) is wsgi
    with pytest.raises(ConfigurationError, match="PDP_TRUSTED_PROXIES: 'nginx'"):
        trust_forwarded(app.wsgi_app, Settings(trusted_proxies="10.0.0.0/8, nginx"))


def test_r_ops_1_the_rate_limit_counts_the_real_caller(make_app: MakeApp) -> None:
    """The administration API is counted per address (the rate limit runs before the view
    reads the token): two callers behind the same nginx have a count each."""
    app, _ = make_app(rate_limit="2/minute", trusted_proxies=TRUSTED, jwt_secret=SECRET)
    client = app.test_client()
    headers = bearer(OPERATOR)

    def get(caller: str) -> int:
        sent = {**headers, "X-Forwarded-For": caller}
        return client.get("/v1/organisations", headers=sent, environ_base=PROXY).status_code

    assert [get("203.0.113.1") for _ in range(2)] == [200, 200]
    assert get("203.0.113.1") == 429
    assert get("203.0.113.2") == 200  # another caller through the same proxy


def test_r_ops_1_without_the_setting_everyone_behind_nginx_shares_one_count(
    make_app: MakeApp,
) -> None:
    app, _ = make_app(rate_limit="2/minute", jwt_secret=SECRET)
    client = app.test_client()
    headers = bearer(OPERATOR)
    answers = [
        client.get(
            "/v1/organisations",
            headers={**headers, "X-Forwarded-For": f"203.0.113.{n}"},
            environ_base=PROXY,
        )
        for n in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert error_code(answers[2]) == "RATE_LIMITED"


def test_r_ops_1_the_log_client_is_the_real_caller(make_app: MakeApp) -> None:
    app, log = make_app(trusted_proxies=TRUSTED, jwt_secret=SECRET)

    @app.get("/v1/test-peer")
    def _peer() -> str:
        return str(request.remote_addr)

    client = app.test_client()
    sent = {"X-Forwarded-For": "203.0.113.7"}
    assert client.get("/v1/test-peer", headers=sent, environ_base=PROXY).text == "203.0.113.7"
    # An administration read is a decision of its own, logged with the caller's address.
    read = client.get("/v1/organisations", headers={**bearer(OPERATOR), **sent}, environ_base=PROXY)
    assert read.status_code == 200
    assert log.entries, "the read was not logged"
    assert log.entries[-1]["client"] == "203.0.113.7"


def test_r_ops_1_the_console_header_is_believed_from_the_proxy_itself(
    make_app: MakeApp,
) -> None:
    """The login header comes from the proxy: the forwarded address (the person's browser) is
    not what the console's trusted range is matched against."""
    app, _ = make_app(
        console_auth="trusted-header", console_trusted_proxies=TRUSTED, trusted_proxies=TRUSTED
    )
    client = app.test_client()
    sent = {"X-Portal-User": "bruno.petit", "X-Forwarded-For": "203.0.113.7"}
    assert client.get("/console/", headers=sent, environ_base=PROXY).status_code == 200
    # A caller outside the range naming a trusted address in its own header gets nothing.
    spoof = {"X-Portal-User": "alice.martin", "X-Forwarded-For": "10.0.0.5"}
    outside = client.get("/console/", headers=spoof, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert outside.status_code == 401
