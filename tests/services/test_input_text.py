"""What a text value may hold (``pdp.core.text``), wherever it arrives: request bodies, path
parameters and query strings, on SQLite and PostgreSQL alike.

A control character (C0, DEL, C1) or a lone surrogate is refused with 400
``INVALID_CHARACTERS`` (a lone surrogate cannot even be written in a JSON body: 400
``INVALID_JSON``), nothing is written, and nothing reaches the decision log, whose entries
PostgreSQL would refuse (NUL). Before this, ``{"user": "a\\u0000b"}`` was answered 200 and
logged, five requests answered 500 on PostgreSQL, and SQLite stored such a user.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from pdp.adapters.sql.database import make_engine, record_change
from pdp.adapters.sql.models import User
from pdp.core.text import has_forbidden
from pdp.web.container import services

from support.actors import Api
from support.constants import MAIRIE, OPERATOR, PARTNER_ADMIN
from support.text import forbidden_in_store, holds_forbidden

# One of each kind: NUL, another C0, DEL, C1 (NEL), the last C1.
CONTROLS = ["\x00", "\x1b", "\x7f", "\x85", "\x9f"]


def _reference_forbidden(text: str) -> bool:
    """Independent of pdp.core.text: Unicode's categories Cc (C0, DEL, C1) and Cs (surrogates)."""
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


@settings(max_examples=2000, deadline=None)
@given(st.text(st.characters(codec=None), max_size=8))
def test_the_definition_is_unicode_cc_and_cs(text: str) -> None:
    assert has_forbidden(text) is _reference_forbidden(text)


def test_every_code_point_is_classified_like_unicode() -> None:
    wrong = [
        c for c in range(0x110000) if has_forbidden(chr(c)) is not _reference_forbidden(chr(c))
    ]
    assert wrong == []


# -- Through the API, both backends ----------------------------------------------------------


def send(
    api: Api, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> TestResponse:
    """As the partner admin on mairie-montreuil's paths, as an operator elsewhere: so that
    the write would be allowed but for the text. The body is encoded by the standard library
    (every control character escaped), not by the app's JSON provider."""
    who = PARTNER_ADMIN if path.startswith(MAIRIE) else OPERATOR
    if raw is None and body is not None:
        raw = json.dumps(body).encode()
    return api.call(who, method, path, raw=raw)


def _refused(response: Any, codes: tuple[str, ...] = ("INVALID_CHARACTERS",)) -> None:
    body = response.get_json()
    assert response.status_code == 400, (response.status_code, body)
    assert body["error"]["code"] in codes, body
    assert body["error"]["message"]


def _user(login: str = "zoe.durand", **fields: str) -> dict[str, str]:
    return {
        "login": login,
        "first_name": "Zoé",
        "last_name": "Durand",
        "email": "zoe.durand@example.org",
        **fields,
    }


# (method, path, body with {} where the hostile text goes)
BODIES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/check", {"user": "{}", "service": "cdap"}),
    ("POST", "/v1/check", {"user": "bruno.petit", "service": "{}"}),
    ("POST", "/v1/check", {"user": "bruno.petit", "service": "cdap", "role": "{}"}),
    ("POST", "/v1/check", {"user": "bruno.petit", "service": "cdap", "caf": "{}"}),
    ("POST", f"{MAIRIE}/users", _user("{}")),
    ("POST", f"{MAIRIE}/users", _user(first_name="{}")),
    ("POST", f"{MAIRIE}/users", _user(last_name="{}")),
    ("POST", f"{MAIRIE}/users", _user(email="{}@example.org")),
    ("PATCH", f"{MAIRIE}/users/chloe.roux", {"first_name": "{}"}),
    ("PATCH", f"{MAIRIE}/groups/CCAS", {"label": "{}"}),
    (
        "POST",
        f"{MAIRIE}/groups",
        {"code": "NEW", "label": "{}", "convention": "x", "manager": {"login": "bruno.petit"}},
    ),
    ("POST", "/v1/admin/check", {"actor": "alice.martin", "action": "{}", "target": "platform"}),
    ("POST", "/v1/admin/check", {"actor": "alice.martin", "action": "user.edit", "target": "{}"}),
    ("POST", "/v1/organisations", {"code": "neuve", "name": "{}"}),
    ("POST", "/v1/organisations", {"code": "neuve", "name": "Neuve", "kind": "{}"}),
]


def _fill(value: Any, text: str) -> Any:
    if isinstance(value, str):
        return value.replace("{}", text)
    if isinstance(value, dict):
        return {k: _fill(v, text) for k, v in value.items()}
    return value


@pytest.mark.parametrize("control", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
@pytest.mark.parametrize(("method", "path", "body"), BODIES)
def test_bodies_refuse_control_characters(
    api: Api, method: str, path: str, body: dict[str, Any], control: str
) -> None:
    before = api.revision()
    _refused(send(api, method, path, _fill(body, f"a{control}b")))
    assert api.revision() == before
    assert not any(holds_forbidden(e) for e in api.log.entries)


@pytest.mark.parametrize(("method", "path", "body"), BODIES[:5])
def test_a_lone_surrogate_cannot_be_sent_in_json(
    api: Api, method: str, path: str, body: dict[str, Any]
) -> None:
    """JSON text escapes a lone surrogate as \\udXXX: the parser refuses the body."""
    raw = json.dumps(_fill(body, "a\ud800b")).encode()
    assert b"\\ud800" in raw
    _refused(send(api, method, path, raw=raw), ("INVALID_JSON",))


def test_batch_items_refuse_control_characters_one_by_one(api: Api) -> None:
    checks = [
        {"user": "bruno.petit", "service": "cdap"},
        {"user": "a\x00b", "service": "cdap"},
        {"user": "bruno.petit", "service": "cdap", "role": "T\x851"},
    ]
    r = send(api, "POST", "/v1/check/batch", {"checks": checks})
    assert r.status_code == 200, r.get_json()
    results = r.get_json()["results"]
    assert results[0]["allowed"] is True
    assert [x["error"]["code"] for x in results[1:]] == ["INVALID_CHARACTERS"] * 2
    assert all(e["user"] == "bruno.petit" for e in api.log.entries)


PATHS = [
    ("GET", f"{MAIRIE}/users/bruno{{}}petit"),
    ("PATCH", f"{MAIRIE}/users/bruno{{}}petit"),
    ("GET", f"{MAIRIE}/groups/CC{{}}AS"),
    ("GET", "/v1/organisations/mairie{}montreuil/users"),
    ("GET", "/v1/users/bruno{}petit/permissions"),
    ("GET", "/v1/services/cd{}ap/users"),
    ("GET", "/v1/decisions/0{}1"),
    ("GET", f"{MAIRIE}/users/bruno{{}}petit/history"),
]


@pytest.mark.parametrize("control", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
@pytest.mark.parametrize(("method", "path"), PATHS)
def test_path_parameters_refuse_control_characters(
    api: Api, method: str, path: str, control: str
) -> None:
    body = {"first_name": "X"} if method == "PATCH" else None
    before = api.revision()
    _refused(send(api, method, path.replace("{}", quote(control)), body))
    assert api.revision() == before


QUERIES = [
    ("/v1/decisions", "user"),
    ("/v1/decisions", "organisation"),
    ("/v1/decisions", "cursor"),
    (f"{MAIRIE}/audit", "actor"),
    (f"{MAIRIE}/audit", "target"),
    (f"{MAIRIE}/users/bruno.petit/history", "role"),
    (f"{MAIRIE}/users", "group"),
    ("/v1/services/cdap/users", "organisation"),
    ("/v1/users/bruno.petit/permissions", "at"),
    ("/v1/decisions", "unknown\x00name"),
]


@pytest.mark.parametrize("control", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
@pytest.mark.parametrize(("path", "name"), QUERIES)
def test_query_strings_refuse_control_characters(
    api: Api, path: str, name: str, control: str
) -> None:
    query = f"{quote(name)}={quote(f'a{control}b')}"
    _refused(send(api, "GET", f"{path}?{query}"))


def test_a_lone_surrogate_in_a_url_arrives_as_a_replacement_character(api: Api) -> None:
    """A URL carries bytes: UTF-8 for a lone surrogate is invalid and is decoded as U+FFFD,
    an ordinary character: the user is simply unknown."""
    login = quote(b"a\xed\xa0\x80")  # 'a' then UTF-8 for U+D800
    r = send(api, "GET", f"{MAIRIE}/users/{login}")
    assert 400 <= r.status_code < 500, r.get_json()


def test_ordinary_text_is_kept(api: Api) -> None:
    """Accents, apostrophes, non-Latin scripts and emoji are text, not control characters."""
    names = {"first_name": "Zoé-Åsa d'Arc", "last_name": "Ωμέγα 漢字 🙂"}
    r = send(api, "POST", f"{MAIRIE}/users", _user(**names))
    assert r.status_code == 201, r.get_json()
    user = r.get_json()["user"]
    assert (user["first_name"], user["last_name"]) == (names["first_name"], names["last_name"])


def test_nothing_stored_holds_a_forbidden_character(api: Api, demo_db: str) -> None:
    """After every refusal above, the store's text columns are clean (checked here after a
    round of hostile writes on this test's own database)."""
    for method, path, body in BODIES:
        for control in CONTROLS:
            send(api, method, path, _fill(body, f"x{control}"))
    assert forbidden_in_store(demo_db) == []


def test_other_mistakes_keep_their_own_code(api: Api) -> None:
    """A control character in an unknown field's value is still an unknown field."""
    body = {"user": "bruno.petit", "service": "cdap", "colour": "bl\x00ue"}
    _refused(send(api, "POST", "/v1/check", body), ("UNKNOWN_FIELD",))


def test_a_login_stored_before_the_rule_is_still_named(api: Api, demo_db: str) -> None:
    """New logins are ASCII (NewLogin); a request may still name any stored login without
    spaces or control characters, such as one created before the rule."""
    r = send(api, "POST", f"{MAIRIE}/users", _user("josé.martin"))
    _refused(r, ("VALIDATION_ERROR",))
    engine = make_engine(demo_db)
    try:
        with Session(engine) as session, session.begin():
            chloe = session.scalars(select(User).where(User.login == "chloe.roux")).one()
            chloe.login = "josé.roux"
            record_change(session, [chloe.organisation_id], "a login from before the rule")
    finally:
        engine.dispose()
    services(api.client.application).decisions.engine.refresh(force=True)
    r = send(api, "POST", "/v1/check", {"user": "josé.roux", "service": "cdap"})
    assert r.status_code == 200 and r.get_json()["allowed"] is True, r.get_json()
    r = send(api, "GET", f"{MAIRIE}/users/{quote('josé.roux')}")
    assert r.status_code == 200, r.get_json()
