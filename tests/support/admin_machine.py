"""The state machine of the stateful test of the administration API
(tests/services/test_stateful_admin.py), all but its rules: what outlives one example (the
``Harness``), drawing plausible but random arguments, sending one write and checking what every
write must satisfy, and the invariants checked after every step. The rules, one per kind of
write, are in ``support.admin_machine_users``, ``support.admin_machine_groups`` and
``support.admin_machine_caf``."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant
from sqlalchemy.engine import make_url

from pdp.core.catalogue import load_catalogue
from pdp.records.audit_trail import AuditChain
from pdp.web.container import services

from support.actors import Api
from support.constants import SECRET, MakeApp
from support.databases import reset_postgres, write_demo
from support.stateful import (
    admins_at_most_two,
    decision_checks,
    is_open,
    load_world,
    one_manager_per_group,
    subgroup_roles_in_parent,
)

CATALOGUE = load_catalogue()
SERVICES = sorted(CATALOGUE.services)
PAIRS = sorted((s, r) for s in SERVICES for r in CATALOGUE.services[s].roles)
AFAS_PROFILES = list(CATALOGUE.services["afas"].user_profiles)

# The demo's organisations, the town hall (the richest tree) more often; an unknown one now and
# then (refused by the engine: UNKNOWN_TARGET, answered 404 UNKNOWN_ORGANISATION).
ORGS = [
    *["mairie-montreuil"] * 7,
    "asso-entraide",
    "asso-entraide",
    "ccas-grand-paris",
    "sip-lyon",
    "habitat-93",
]
UNKNOWN_ORG = "nulle-part"
UNKNOWN_CODES = {"UNKNOWN_ORGANISATION", "UNKNOWN_GROUP", "UNKNOWN_USER"}
GHOST = "ghost.user"  # a login nobody has: 401 UNKNOWN_ACTOR
CAFS = ["751", "931", "691", "131", "999"]  # 999: no such Caf

# Who acts: partner admins and managers most often (they may write); the others are refused.
ACTORS = (
    *["admin"] * 5,
    *["manager"] * 3,
    "operator",
    "plain",
    "closed",
    "other_org",
    "unknown",
)
CAF_SIDE = ("operator", "operator", "operator", "operator", "admin", "manager", "closed")


Expect = list[tuple[int, str]] | None


class Harness:
    """What outlives one example: the database to reset, the app factory, the counts."""

    def __init__(
        self,
        request: pytest.FixtureRequest,
        backend: str,
        url: str,
        make_app: MakeApp,
        today: dt.date,
    ) -> None:
        self.request = request
        self.backend = backend
        self.url = url
        self.make_app = make_app
        self.today = today
        self.app: Flask | None = None
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.codes: Counter[str] = Counter()
        self.examples = 0
        self.steps = 0

    def fresh(self) -> Flask:
        """A new app over a fresh copy of the demo (revision 1)."""
        if self.app is not None:
            services(self.app).db.dispose()
        if self.backend == "sqlite":
            path = Path(str(make_url(self.url).database))
            template: Path = self.request.getfixturevalue("sqlite_demo_template")
            for suffix in ("-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            shutil.copyfile(template, path)
        else:
            reset_postgres(self.url)
            write_demo(self.url, self.today)
        self.app, _ = self.make_app(jwt_secret=SECRET)
        self.examples += 1
        return self.app


def iso(day: dt.date | None) -> str | None:
    """The ISO form of ``day`` (None stays None)."""
    return None if day is None else day.isoformat()


class AdminMachineBase(RuleBasedStateMachine):
    """What every rule of the machine uses: drawing arguments, sending one write and checking
    what every write must satisfy, and the invariants checked after every step."""

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.h = harness
        self.today = harness.today
        self.app = harness.fresh()
        self.client: FlaskClient = self.app.test_client()
        self.api = Api(self.client)
        self.db = services(self.app).db
        self.world = load_world(self.db, self.today)
        self.serial = 0

    # -- drawing arguments -----------------------------------------------------------------------

    def fresh_name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.h.examples}x{self.serial}"

    def draw_org(self, data: st.DataObject, unknown: bool = True) -> str:
        choices = [*ORGS, UNKNOWN_ORG] if unknown else ORGS
        return data.draw(st.sampled_from(choices), label="org")

    def draw_day(
        self, data: st.DataObject, label: str, *, none: int = 6, past: int = 1, future: int = 2
    ) -> dt.date | None:
        """None (the default), today, a past day or a future day, with the given weights."""
        kind = data.draw(
            st.sampled_from(["none"] * none + ["today"] + ["past"] * past + ["future"] * future),
            label=f"{label} kind",
        )
        if kind == "none":
            return None
        if kind == "today":
            return self.today
        offset = data.draw(st.integers(1, 40), label=f"{label} offset")
        return self.today + dt.timedelta(days=-offset if kind == "past" else offset)

    def actors(self, org: str, kind: str) -> list[str]:
        """Logins of one kind of actor, relative to ``org`` (by the state now)."""
        w, today = self.world, self.today
        if kind == "operator":
            return [u["login"] for u in w.users() if u["is_operator"] and is_open(u, today)]
        if kind == "closed":
            return [u["login"] for u in w.users() if not is_open(u, today)]
        if kind == "unknown":
            return [GHOST]
        if w.org_id(org) is None:
            return []
        admins = set(w.admins(org, today))
        managers = {
            u["login"]
            for u in w.users(org)
            if is_open(u, today) and w.managed_by(u["login"], today)
        }
        if kind == "admin":
            return sorted(admins)
        if kind == "manager":
            return sorted(managers - admins)
        if kind == "plain":
            return [
                u["login"]
                for u in w.users(org)
                if is_open(u, today) and u["login"] not in admins | managers
            ]
        assert kind == "other_org"
        oid = w.org_id(org)
        return [
            u["login"]
            for u in w.users()
            if is_open(u, today) and not u["is_operator"] and u["organisation_id"] != oid
        ]

    def draw_actor(self, data: st.DataObject, org: str, kinds: tuple[str, ...] = ACTORS) -> str:
        kind = data.draw(st.sampled_from(kinds), label="actor kind")
        candidates = self.actors(org, kind) or self.actors(org, "operator")
        return data.draw(st.sampled_from(candidates), label=f"actor ({kind})")

    def draw_login(self, data: st.DataObject, org: str, label: str) -> str:
        """Mostly a user of ``org``, sometimes of another organisation or nobody."""
        own = [u["login"] for u in self.world.users(org)]
        open_own = [u["login"] for u in self.world.users(org) if is_open(u, self.today)]
        others = [u["login"] for u in self.world.users() if u["login"] not in own]
        pool = open_own * 8 + own * 2 + others + [GHOST] if own else [*others, GHOST]
        return data.draw(st.sampled_from(pool), label=label)

    def draw_group(self, data: st.DataObject, org: str, label: str) -> str:
        codes = [g["code"] for g in self.world.groups(org)]
        return data.draw(st.sampled_from(codes * 6 + ["NO-SUCH-GROUP"]), label=label)

    def new_user(self, data: st.DataObject) -> dict[str, Any]:
        """A new user's body, its login fresh, or now and then taken."""
        taken = data.draw(st.sampled_from([False] * 5 + [True]), label="new login taken")
        if taken:
            login = data.draw(st.sampled_from([u["login"] for u in self.world.users()]))
        else:
            login = self.fresh_name("u")
        return {
            "login": login,
            "first_name": "Prénom",
            "last_name": data.draw(st.sampled_from(["Durand", "Nguyen", "Ó Súilleabháin"])),
            "email": f"{login}@example.fr",
        }

    # -- one write -------------------------------------------------------------------------------

    def call(self, method: str, path: str, who: str, body: Any = None) -> Any:
        """One request as ``who``."""
        return self.api.call(who, method, path, body)

    def may(self, actor: str, action: str, target: str) -> tuple[bool, str]:
        """The public admin check (R-ADM-7): (allowed, reason code)."""
        body = self.api.admin_check(actor, action, target)
        return bool(body["allowed"]), str(body["reason"]["code"])

    def write(
        self,
        kind: str,
        actor: str,
        method: str,
        path: str,
        body: Any,
        action: str,
        target: str,
        expect: Expect,
        also: tuple[str, ...] = (),
    ) -> int:
        """Send one write and check what every write must satisfy; return the status.

        ``expect``: the refusals the state before predicts, as (status, code) (any of them:
        the service reports the first it meets); [] predicts a success; None, no prediction.
        Checked only when the actor is authorised. ``also``: actions the write may record
        besides ``action`` (creating the user it names...).
        """
        before = self.world
        user = before.user(actor)
        actor_open = user is not None and is_open(user, self.today)
        allowed, reason = self.may(actor, action, target) if actor_open else (False, "")
        started = time.perf_counter()
        response = self.call(method, path, actor, body)
        status = response.status_code
        payload = response.get_json()
        context = f"{kind}: {actor} {method} {path} {body} → {status} {payload}"
        # 8. never a 5xx.
        assert status < 500, context
        after = load_world(self.db, self.today)
        if 200 <= status < 300:
            outcome = "committed"
            # 7. the revision advanced by one and the audit trail has the write (R-ADM-7).
            assert after.revision == before.revision + 1, context
            assert payload["revision"] == after.revision, context
            records = after.audit(after.revision)
            assert records, f"no audit record for revision {after.revision}: {context}"
            assert after.audit_seq == before.audit_seq + len(records), context
            assert {r["actor"] for r in records} == {actor}, (records, context)
            actions = {r["action"] for r in records}
            assert action in actions and actions <= {action, *also}, (actions, context)
            assert all(r["organisation"] for r in records), (records, context)
        else:
            outcome = "refused"
            code = payload["error"]["code"]
            assert payload["error"]["message"], context
            # 6. a refused write changed nothing: tables, revision, audit head.
            assert after.revision == before.revision, context
            assert after.digest() == before.digest(), f"refused write changed the store: {context}"
            self.h.codes[f"{kind} {status} {code}"] += 1
        # The write path's authorisation agrees with the public check (R-ADM-7).
        if not actor_open:
            assert status == 401, f"closed or unknown actor not refused (R-USR-4): {context}"
        elif not allowed:
            assert status in (400, 403, 404), f"admin check said {reason}: {context}"
            if status == 403:
                assert payload["error"]["code"] == reason, context
            # A target that does not exist: 404 naming what is unknown, on every route (or a
            # 400 the body earned first).
            assert (status == 404) is (reason == "UNKNOWN_TARGET" and status != 400), context
            if status == 404:
                assert payload["error"]["code"] in UNKNOWN_CODES, context
        else:
            assert status not in (401, 403), f"admin check allowed it: {context}"
            if expect is not None:
                got = (
                    (status, payload.get("error", {}).get("code")) if outcome == "refused" else None
                )
                if expect:
                    assert got in expect, f"expected one of {expect}: {context}"
                else:
                    assert got is None, f"expected a success: {context}"
        self.world = after
        self.h.outcomes[(kind, outcome)] += 1
        self.h.steps += 1
        event(f"{kind}: {outcome}")
        event(f"write: {outcome}")
        if time.perf_counter() - started > 5:
            event("slow write (> 5 s)")
        return status

    # -- invariants, after every step ------------------------------------------------------------

    @invariant()
    def business_rules_hold(self) -> None:
        """R-ADM-1, R-ADM-3, R-GRP-4, R-GRP-2, read from the database."""
        w = self.world
        problems = admins_at_most_two(w) + one_manager_per_group(w) + subgroup_roles_in_parent(w)
        assert not problems, "\n".join(problems)

    @invariant()
    def closed_users_and_unsubscribed_services_denied(self) -> None:
        """R-USR-4 (closed users denied everything) and R-CON-2 / R-DEC-1 (no open
        subscription, no access), through POST /v1/check/batch."""
        checks = decision_checks(self.world, SERVICES)
        response = self.client.post("/v1/check/batch", json={"checks": [c for c, _ in checks]})
        assert response.status_code == 200, response.get_json()
        results = response.get_json()["results"]
        assert len(results) == len(checks)
        for (check, rule_id), result in zip(checks, results, strict=True):
            assert result.get("allowed") is False, f"{rule_id}: {check} allowed: {result}"
        assert response.get_json()["results"] is not None

    def teardown(self) -> None:
        """The audit chain is intact at the end of each example (R-ADM-7)."""
        report = AuditChain().verify(self.db)
        assert report.ok, report.message
