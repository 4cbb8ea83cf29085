"""The audit trail's tests share: the key of a keyed chain, emptying the trail back to its
genesis, the README's four writes, and a forger's statements."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, update

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.models import AuditRecord, PolicyRevision
from pdp.records.audit_trail import (
    GENESIS,
)

from support.actors import Api
from support.constants import CONVENTION, MAIRIE

KEY = "audit-key-" + "k" * 30


def reset_audit_head(url: str) -> None:
    """Empty the audit trail and point its head back to the genesis."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(delete(AuditRecord))
            conn.execute(
                update(PolicyRevision)
                .where(PolicyRevision.id == 1)
                .values(audit_seq=0, audit_hash=GENESIS)
            )
    finally:
        engine.dispose()


def some_writes(admin: Api) -> None:
    """The README's how-to: a group, a role, a user, a membership (four writes)."""
    group = {
        "code": "RSA",
        "label": "Instruction RSA",
        "convention": CONVENTION,
        "manager": {"login": "bruno.petit"},
    }
    user = {
        "login": "zoe.durand",
        "first_name": "Zoé",
        "last_name": "Durand",
        "email": "zoe.durand@montreuil.example.fr",
    }
    for who, method, path, body, status in (
        ("alice.martin", "POST", f"{MAIRIE}/groups", group, 201),
        (
            "alice.martin",
            "POST",
            f"{MAIRIE}/groups/RSA/roles",
            {"service": "cdap", "role": "T18"},
            201,
        ),
        ("alice.martin", "POST", f"{MAIRIE}/users", user, 201),
        ("bruno.petit", "POST", f"{MAIRIE}/users/zoe.durand/memberships", {"group": "RSA"}, 201),
    ):
        r = admin.call(who, method, path, body)
        assert r.status_code == status, r.get_json()


def tamper(db: Engine, *statements: Any) -> None:
    """Run the forger's statements in one transaction, behind the service's back."""
    with db.begin() as conn:
        for statement in statements:
            conn.execute(statement)
