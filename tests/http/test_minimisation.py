"""Minimisation by default (R-CNIL-13, R-CNIL-14): the decision log holds logins and codes,
never a name or an email; the allocataire number only as a keyed pseudonym. Over the demo with a
real decision log, shipped to the table (the ``portal`` fixture of tests/http/conftest.py)."""

from __future__ import annotations

from typing import get_type_hints

from sqlalchemy import select

from pdp.adapters.sql.models import DecisionRecord, User
from pdp.core.masking import Masker
from pdp.records.decision_log.entry import Entry, Row
from pdp.web.container import services

from support.admin_bodies import new_user
from support.auditor import Portal
from support.constants import API_HEADERS, MAIRIE, MANAGER, OPERATOR, PARTNER_ADMIN

FAMILY = "9081726"
PERSONAL = ("first_name", "last_name", "email", "name", "names", "label")


def test_r_cnil_13_no_field_of_the_log_can_hold_a_name_or_an_email() -> None:
    # The entry's declared fields and the table's columns: logins, codes, numbers, no names.
    for fields in (
        set(get_type_hints(Entry)),
        set(Row._fields),
        set(DecisionRecord.__table__.c.keys()),
    ):
        assert not fields & set(PERSONAL), fields & set(PERSONAL)


def test_r_cnil_13_the_log_holds_logins_and_codes_never_names_or_emails(portal: Portal) -> None:
    # Every kind of decision, about people whose names and emails the store holds.
    portal.check(user=MANAGER, service="cdap", feature="paiements", allocataire=FAMILY)
    portal.check(user="chloe.roux", service="cdap", role="T18")
    portal.call(None, "GET", f"/v1/users/{MANAGER}/permissions", headers=API_HEADERS)
    portal.call(None, "GET", "/v1/services/cdap/users", headers=API_HEADERS)
    body = new_user("yannick.quemener", first="Yannick", last="Quéméner")
    portal.write(PARTNER_ADMIN, "POST", f"{MAIRIE}/users", body, status=201)
    portal.call(PARTNER_ADMIN, "GET", f"/v1/users/{MANAGER}/file")  # refused: logged too
    portal.call(OPERATOR, "GET", f"/v1/users/{MANAGER}/file")
    portal.ship()

    db = services(portal.app).db
    with db.connect() as conn:
        people = conn.execute(select(User.first_name, User.last_name, User.email)).all()
        rows = conn.execute(select(DecisionRecord)).all()
    assert {r.kind for r in rows} >= {"check", "admin", "permissions", "service_users"}
    logged = "\n".join(" ".join(str(value) for value in row) for row in rows)
    emails = [p.email for p in people if p.email]
    assert "yannick.quemener@x.fr" in emails and len(emails) > 5
    for email in emails:
        assert email not in logged
    assert "Yannick" not in logged and "Quéméner" not in logged
    for first, last in ((p.first_name, p.last_name) for p in people):
        assert f"{first} {last}" not in logged and f"{last} {first}" not in logged
    assert MANAGER in logged  # logins are kept: who did what must stay answerable
    # R-CNIL-14: the allocataire number, only as its keyed pseudonym.
    assert FAMILY not in logged
    assert Masker().pseudonym(FAMILY) in logged


def test_r_cnil_14_the_pseudonym_is_reversed_only_with_the_key() -> None:
    # The same number gives the same pseudonym under the same key (an auditor holding a number
    # finds its checks), another under another key: without the key, no one can recompute it.
    keyed = Masker("email", "k" * 40)
    assert keyed.pseudonym(FAMILY) == Masker("email", "k" * 40).pseudonym(FAMILY)
    assert keyed.pseudonym(FAMILY) != Masker("email", "j" * 40).pseudonym(FAMILY)
    assert FAMILY not in keyed.pseudonym(FAMILY)
