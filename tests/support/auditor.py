"""What the auditors' API tests (tests/http/test_auditor_*.py) share: the app acting as anyone
and reading as an auditor (``Portal``), and the README's how-to replayed through it."""

from __future__ import annotations

from typing import Any

from flask import Flask

from pdp.records.decision_log import Shipper
from pdp.web.container import services

from support.actors import Api
from support.constants import CONVENTION, MAIRIE, OPERATOR


class Portal(Api):
    """The app with a real decision log, acting as anyone (``Api``), and reading as an
    auditor."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app.test_client())
        self.app = app

    def ship(self) -> None:
        shipper: Shipper = services(self.app).shipper
        shipper.ship_once()

    def decisions(self, who: str = OPERATOR, **query: Any) -> list[dict[str, Any]]:
        """Every page of GET /v1/decisions (after shipping), newest first."""
        self.ship()
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {**query, **({"cursor": cursor} if cursor else {})}
            page = self.get(who, "/v1/decisions", **params)
            out.extend(page["decisions"])
            cursor = page["next_cursor"]
            if cursor is None:
                return out

    def decision(self, decision_id: str, who: str = OPERATOR) -> dict[str, Any]:
        self.ship()
        return self.get(who, f"/v1/decisions/{decision_id}")

    def records(self, path: str, who: str = OPERATOR, **query: Any) -> list[dict[str, Any]]:
        """Every page of an audit listing, newest first."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {**query, **({"cursor": cursor} if cursor else {})}
            page = self.get(who, path, **params)
            out.extend(page["records"])
            cursor = page["next_cursor"]
            if cursor is None:
                return out


def by_id(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The entries by decision id."""
    return {e["decision_id"]: e for e in entries}


def how_to(p: Portal) -> dict[str, int]:
    """The README's "habiliter un utilisateur": alice creates RSA (manager bruno) and gives it
    T18, creates zoe; bruno, manager of RSA, attaches her. The revisions, by step."""
    return {
        "group": p.write(
            "alice.martin",
            "POST",
            f"{MAIRIE}/groups",
            {
                "code": "RSA",
                "label": "Instruction RSA",
                "convention": CONVENTION,
                "manager": {"login": "bruno.petit"},
            },
            status=201,
            request_id="req-group",
        )["revision"],
        "role": p.write(
            "alice.martin",
            "POST",
            f"{MAIRIE}/groups/RSA/roles",
            {"service": "cdap", "role": "T18"},
            status=201,
            request_id="req-role",
        )["revision"],
        "user": p.write(
            "alice.martin",
            "POST",
            f"{MAIRIE}/users",
            {
                "login": "zoe.durand",
                "first_name": "Zoé",
                "last_name": "Durand",
                "email": "zoe.durand@montreuil.example.fr",
            },
            status=201,
            request_id="req-user",
        )["revision"],
        "membership": p.write(
            "bruno.petit",
            "POST",
            f"{MAIRIE}/users/zoe.durand/memberships",
            {"group": "RSA"},
            status=201,
            request_id="req-attach",
        )["revision"],
    }
