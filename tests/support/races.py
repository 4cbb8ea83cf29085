"""Races of administrative requests: several apps over one database sending at once, and what
holds after every race."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from pdp.adapters.sql.models import (
    Group,
    GroupRole,
    PolicyChange,
    PolicyRevision,
)
from pdp.core.config import Settings
from pdp.services.tokens import mint

from support.constants import SECRET


@dataclass(frozen=True)
class Call:
    """One request of a race: who sends what."""

    actor: str
    method: str
    path: str
    body: dict[str, Any] | None = None


@dataclass
class Racers:
    """Several apps over one database, and a direct engine to read the database."""

    apps: list[Flask]
    db: Engine

    def revision(self) -> int:
        with Session(self.db) as s:
            return int(s.execute(select(PolicyRevision.revision)).scalar_one())

    def send(self, call: Call) -> TestResponse:
        """One request, alone (set-up between rounds), through the first app."""
        return _send(self.apps[0], call)

    def race(self, calls: list[Call]) -> list[TestResponse]:
        """Send ``calls`` at once, one per app and thread; return the responses in order.

        Checks what holds for every race: no 5xx, every answer JSON with a stable code, and the
        successful writes took the revisions right after the one before the race, one each
        (a refused write rolls its revision back).
        """
        assert len(calls) <= len(self.apps)
        before = self.revision()
        barrier = threading.Barrier(len(calls))
        responses: list[TestResponse | None] = [None] * len(calls)
        failures: list[BaseException] = []
        # Tokens and clients first: the threads only wait, then send.
        prepared = [
            (app.test_client(), _headers(c.actor), c)
            for app, c in zip(self.apps, calls, strict=False)
        ]

        def run(i: int) -> None:
            client, headers, call = prepared[i]
            try:
                barrier.wait(timeout=30)
                responses[i] = client.open(
                    call.path, method=call.method, json=call.body, headers=headers
                )
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a racer hung"
        assert not failures, failures
        done = [r for r in responses if r is not None]
        assert len(done) == len(calls)
        for r in done:
            assert r.status_code < 500, r.get_json()
            assert r.is_json, r.data
            if r.status_code >= 400:
                assert set(r.get_json()["error"]) >= {"code", "message"}
        won = [r.get_json()["revision"] for r in done if r.status_code < 300]
        assert sorted(won) == list(range(before + 1, before + 1 + len(won))), (before, won)
        assert self.revision() == before + len(won)
        with Session(self.db) as s:
            logged = set(
                s.execute(
                    select(PolicyChange.revision).where(PolicyChange.revision > before)
                ).scalars()
            )
        assert logged == set(won)
        return done


def _headers(login: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(Settings(jwt_secret=SECRET), login)}"}


def _send(app: Flask, call: Call) -> TestResponse:
    return app.test_client().open(
        call.path, method=call.method, json=call.body, headers=_headers(call.actor)
    )


def orphan_roles(db: Engine, today: dt.date) -> list[tuple[str, str, str]]:
    """Roles not ended on a sub-group whose parent holds no such role not ended (R-GRP-4)."""
    with Session(db) as s:
        groups = {g.id: g for g in s.execute(select(Group)).scalars()}
        held: dict[int, set[tuple[str, str]]] = {}
        for role in s.execute(
            select(GroupRole).where(not_ended(GroupRole.closes_on, today))
        ).scalars():
            held.setdefault(role.group_id, set()).add((role.service, role.role))
    return sorted(
        (groups[gid].code, service, role)
        for gid, pairs in held.items()
        if groups[gid].parent_id is not None
        for service, role in pairs
        if (service, role) not in held.get(groups[gid].parent_id or -1, set())
    )


def not_ended(column_closes: Any, today: dt.date) -> Any:
    return column_closes.is_(None) | (column_closes > today)
