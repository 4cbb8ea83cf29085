"""The Flask extension ``pdp.client.flask.PDP``, on a tiny front-end whose client talks to a fake
transport: views guarded by ``@pdp.requires``, the default 401/403 answers (HTML or JSON, the
French reason escaped), failing closed (R-DEC-2) and the template helpers."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, g, render_template_string, request
from flask.testing import FlaskClient
from markupsafe import escape

from pdp.client import Client, Decision, PdpUnavailable, RawResponse
from pdp.client.errors import MESSAGES, UNAVAILABLE
from pdp.client.flask import PDP

Answer = RawResponse | Exception | Callable[[str, Any], RawResponse]

MENU = (
    "{% if pdp_can('cdap', 'T18') %}[T18]{% endif %}"
    "{% if pdp_can('cdap', 'T1', '751') %}[T1-751]{% endif %}"
    "{% if pdp_can('cdap', caf='691') %}[691]{% endif %}"
    "{% if pdp_can('afas') %}[afas]{% endif %}"
    "{% set listing = pdp_permissions() %}"
    "<{{ listing.service_names()|join(',') }}|{{ listing.error.code if listing.error }}>"
)


def ok(data: Any) -> RawResponse:
    return RawResponse(200, "application/json", json.dumps(data).encode())


def decision(allowed: bool, code: str = "ALLOWED", message: str = "Accès autorisé.") -> RawResponse:
    reason = {"code": code, "message": message}
    return ok({"allowed": allowed, "reason": reason, "decision_id": "d42", "revision": 1})


def listing(*services: tuple[str, list[str], list[str]]) -> RawResponse:
    items = [{"service": s, "roles": r, "cafs": c} for s, r, c in services]
    return ok({"services": items, "revision": 1, "decision_id": "p1"})


DENIED = decision(False, "ROLE_NOT_GRANTED", "Aucun groupe ne porte ce rôle.")
NADIA = listing(("cdap", ["T1"], ["751", "931"]))


class FakeTransport:
    """Answers every request with ``answer`` (or raises it), recording (method, path, body)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str, Any]] = []
        self.closed = False

    def send(self, method: str, path: str, body: bytes | None) -> RawResponse:
        sent = None if body is None else json.loads(body)
        self.calls.append((method, path, sent))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer if isinstance(self.answer, RawResponse) else self.answer(path, sent)

    def close(self) -> None:
        self.closed = True


def front(pdp: PDP, app: Flask | None = None) -> Flask:
    """A front-end: the login comes from the ``X-Login`` header; its routes are guarded."""
    app = app or Flask(__name__)
    app.testing = True

    @pdp.user_loader
    def login() -> str | None:
        return request.headers.get("X-Login")

    @app.get("/instruction/<caf>")
    @pdp.requires("cdap", role="T18", caf=lambda: (request.view_args or {})["caf"])
    def instruction(caf: str) -> str:
        return f"dossier {caf}, décision {g.pdp_decision.decision_id}"

    @app.get("/afas")
    @pdp.requires("afas", caf="751")
    def afas() -> str:
        return "afas"

    @app.get("/menu")
    def menu() -> str:
        return render_template_string(MENU)

    return app


def make(answer: Answer, **options: Any) -> tuple[FlaskClient, FakeTransport, PDP]:
    transport = FakeTransport(answer)
    client = Client("http://pdp.invalid", "key", transport=transport)
    pdp = PDP(client=client, **options)
    app = front(pdp)
    pdp.init_app(app)
    return app.test_client(), transport, pdp


def get(client: FlaskClient, path: str, login: str | None = "bruno.petit", **headers: str) -> Any:
    if login is not None:
        headers["X-Login"] = login
    return client.get(path, headers=headers)


# -- @pdp.requires --------------------------------------------------------------------------


def test_an_allowed_user_reaches_the_view_with_the_decision_and_the_asked_caf() -> None:
    client, transport, _ = make(decision(True))
    response = get(client, "/instruction/931")
    assert (response.status_code, response.text) == (200, "dossier 931, décision d42")
    asked = {"user": "bruno.petit", "service": "cdap", "role": "T18", "caf": "931"}
    assert transport.calls == [("POST", "/v1/check", asked)]
    assert get(client, "/afas").status_code == 200
    assert transport.calls[1][2] == {"user": "bruno.petit", "service": "afas", "caf": "751"}


def test_a_denial_answers_403_with_the_french_reason_escaped_rdec3() -> None:
    message = "Refusé <script>alert('x')</script> pour l'accueil"
    client, _, _ = make(decision(False, "ROLE_NOT_GRANTED", message))
    response = get(client, "/instruction/931")
    assert response.status_code == 403 and response.mimetype == "text/html"
    assert str(escape(message)) in response.text and "ROLE_NOT_GRANTED" in response.text
    assert "<script>" not in response.text and "Accès refusé" in response.text
    assert "dossier" not in response.text


def test_a_denial_answers_json_to_api_callers() -> None:
    client, _, _ = make(DENIED)
    response = get(client, "/instruction/931", Accept="application/json")
    assert (response.status_code, response.mimetype) == (403, "application/json")
    assert response.get_json() == {
        "error": {"code": "ROLE_NOT_GRANTED", "message": "Aucun groupe ne porte ce rôle."}
    }


def test_nobody_signed_in_answers_401_without_asking() -> None:
    client, transport, _ = make(decision(True))
    page = get(client, "/instruction/931", login=None)
    assert page.status_code == 401 and "Connexion requise" in page.text
    api = get(client, "/instruction/931", login="", Accept="application/json")
    assert (api.status_code, api.get_json()["error"]["code"]) == (401, "UNAUTHENTICATED")
    assert transport.calls == []


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_an_unreachable_decision_point_denies_rdec2(accept: str) -> None:
    client, transport, _ = make(PdpUnavailable("refused"))
    response = get(client, "/instruction/931", Accept=accept)
    assert response.status_code == 403 and len(transport.calls) == 1
    if accept == "application/json":
        assert response.get_json()["error"] == {
            "code": UNAVAILABLE,
            "message": MESSAGES[UNAVAILABLE],
        }
    else:
        assert str(escape(MESSAGES[UNAVAILABLE])) in response.text and UNAVAILABLE in response.text


def test_custom_refusals_replace_the_defaults() -> None:
    seen: list[Decision] = []

    def denied(decision: Decision) -> tuple[str, int]:
        seen.append(decision)
        assert g.pdp_decision is decision
        return f"non: {decision.reason.code}", 418

    client, _, _ = make(DENIED, on_denied=denied, on_unauthenticated=lambda: ("qui ?", 302))
    response = get(client, "/instruction/931")
    assert (response.status_code, response.text) == (418, "non: ROLE_NOT_GRANTED")
    assert len(seen) == 1 and seen[0].decision_id == "d42" and not seen[0].allowed
    anonymous = get(client, "/instruction/931", login=None)
    assert (anonymous.status_code, anonymous.text) == (302, "qui ?")


def test_a_view_without_user_loader_is_a_configuration_error() -> None:
    pdp = PDP(client=Client("http://pdp.invalid", "k", transport=FakeTransport(decision(True))))
    app = Flask(__name__)
    app.testing = True
    pdp.init_app(app)

    @app.get("/x")
    @pdp.requires("cdap")
    def view() -> str:
        return "x"

    with pytest.raises(RuntimeError, match="user_loader"):
        app.test_client().get("/x")


# -- template helpers -----------------------------------------------------------------------


def test_templates_ask_the_listing_once_per_request() -> None:
    client, transport, _ = make(NADIA)
    first = get(client, "/menu", login="nadia.benali")
    assert (first.status_code, first.text) == (200, "[T1-751]<cdap|>")
    assert transport.calls == [("GET", "/v1/users/nadia.benali/permissions", None)]
    get(client, "/menu", login="nadia.benali")
    assert len(transport.calls) == 2  # a new request asks again (nothing kept across requests)


def test_templates_show_every_entry_the_listing_opens() -> None:
    both = listing(("cdap", ["T1", "T18"], ["931"]), ("afas", ["declarer"], ["751"]))
    client, _, _ = make(both)
    assert get(client, "/menu").text == "[T18][afas]<cdap,afas|>"


@pytest.mark.parametrize(
    ("answer", "code"),
    [(PdpUnavailable("down"), UNAVAILABLE), (RawResponse(502, "text/html", b"<h1>"), None)],
)
def test_a_failed_listing_hides_the_menu_rdec2(answer: Answer, code: str | None) -> None:
    client, transport, _ = make(answer)
    response = get(client, "/menu")
    assert response.status_code == 200 and len(transport.calls) == 1
    assert response.text == f"<|{code or 'PDP_BAD_RESPONSE'}>"


def test_templates_for_nobody_show_nothing_without_asking() -> None:
    client, transport, _ = make(NADIA)
    assert get(client, "/menu", login=None).text == "<|UNAUTHENTICATED>"
    assert transport.calls == []


# -- init_app -------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [{}, {"PDP_URL": "http://pdp"}, {"PDP_API_KEY": "k"}])
def test_init_app_needs_a_url_and_a_key_or_a_client(config: dict[str, str]) -> None:
    app = Flask(__name__)
    app.config.update(config)
    with pytest.raises(RuntimeError, match="PDP_URL"):
        PDP(app)


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def test_init_app_builds_its_own_client_from_the_config() -> None:
    pdp = PDP()
    app = front(pdp)
    app.config.update(
        PDP_URL=f"http://127.0.0.1:{free_port()}",  # nothing listens: denied, not an error
        PDP_API_KEY="k",
        PDP_TIMEOUT="0.7",
        PDP_RETRIES=0,
        PDP_CACHE_TTL=12,
    )
    pdp.init_app(app)
    with app.app_context():
        built = pdp.client
    assert isinstance(built, Client)
    assert built._decisions is not None and built._decisions.ttl == 12.0
    transport: Any = built._transport
    assert transport._pool.timeout.connect_timeout == 0.7 and transport._retries == 0
    response = get(app.test_client(), "/instruction/931", Accept="application/json")
    assert (response.status_code, response.get_json()["error"]["code"]) == (403, UNAVAILABLE)
    PDP.close(app)
    assert transport._pool.pool is None  # urllib3 empties its pool on close


def test_init_app_without_a_cache_ttl_builds_an_uncached_client() -> None:
    app = Flask(__name__)
    app.config.update(PDP_URL="http://pdp.invalid", PDP_API_KEY="k")
    pdp = PDP(app)
    with app.app_context():
        assert pdp.client._decisions is None and pdp.client._listings is None


def test_one_extension_serves_several_apps_each_with_its_own_client() -> None:
    pdp = PDP()
    apps = [Flask(f"app{i}") for i in range(2)]
    for ttl, app in enumerate(apps):
        app.config.update(PDP_URL="http://pdp.invalid", PDP_API_KEY="k", PDP_CACHE_TTL=ttl + 1)
        pdp.init_app(app)
    caches = []
    for app in apps:
        with app.app_context():
            caches.append(pdp.client._decisions)
    assert [c.ttl for c in caches if c is not None] == [1.0, 2.0]


def test_closing_leaves_a_given_client_to_its_owner() -> None:
    client, transport, _ = make(decision(True))
    PDP.close(client.application)
    assert not transport.closed


# -- features (R-DEC-1, R-DEC-4) ------------------------------------------------------------


def test_a_view_may_require_a_feature_and_templates_show_the_tabs_it_opens() -> None:
    transport = FakeTransport(decision(True))
    client = Client("http://pdp.invalid", "key", transport=transport)
    pdp = PDP(client=client)
    app = front(pdp)

    @app.get("/dossier/<caf>/paiements")
    @pdp.requires("cdap", feature="paiements", caf=lambda: (request.view_args or {})["caf"])
    def payments(caf: str) -> str:
        return f"paiements {caf}"

    @app.get("/dossier")
    def tabs() -> str:
        return render_template_string(
            "{% for tab in ['synthese', 'paiements', 'rsa'] %}"
            "{% if pdp_can('cdap', feature=tab) %}[{{ tab }}]{% endif %}{% endfor %}"
        )

    pdp.init_app(app)
    web = app.test_client()
    assert get(web, "/dossier/931/paiements").text == "paiements 931"
    asked = {"user": "bruno.petit", "service": "cdap", "caf": "931", "feature": "paiements"}
    assert transport.calls == [("POST", "/v1/check", asked)]
    opened = {
        "service": "cdap",
        "roles": ["T5"],
        "cafs": ["931"],
        "features": ["synthese", "paiements"],
    }
    transport.answer = ok({"services": [opened], "revision": 1, "decision_id": "p1"})
    assert get(web, "/dossier").text == "[synthese][paiements]"
    transport.answer = DENIED
    assert get(web, "/dossier/931/paiements").status_code == 403
