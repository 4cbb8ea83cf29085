"""A stateful test of the administration API: random actors doing random administrative writes
over HTTP (the in-process Flask test client) on the demo data, with the business rules checked
after every step, straight from the database.

Each example of the state machine starts from a fresh copy of the demo (SQLite: the demo file
copied again; PostgreSQL: emptied and loaded again) and a new app built by conftest's
``make_app``. A step picks an organisation, an actor (operator, partner admin, manager, plain
user, closed user, user of another organisation, unknown login) and an operation with plausible
but random arguments, many of which must be refused (outside the perimeter, a third admin, a
role the parent lacks, unknown things, past dates...).

After each write:

- no answer is a 5xx;
- a refusal (4xx) changed nothing: the digest of every domain table, the revision and the audit
  head are what they were (R-ADM-7; one business action, one transaction);
- a success advanced the revision by one, answered that revision, and left audit records
  carrying it, the actor and the action (R-ADM-7);
- the authorisation agrees with the public ``POST /v1/admin/check``: not allowed there → 403
  with the same reason code (or a 400 the body earned first), or 404 naming what is unknown
  when the reason is UNKNOWN_TARGET; allowed → neither 401 nor 403; a
  closed or unknown actor → 401 (R-USR-4);
- where the outcome is cheap to predict from the state before (a third admin, a past date, a
  taken code, a role the parent lacks...), the answer is the predicted one: a model-free oracle
  written from the rules (docs/rules.md), not from the service's code paths.

After each step (invariants): at most two partner admins per organisation (R-ADM-1), exactly one
open manager, an open user of the organisation, per open group (R-ADM-3), sub-group roles within
the parent's (R-GRP-4) and no open sub-group under a closed parent (R-GRP-2), all today and on
every later day the store changes; closed users denied every service (R-USR-4) and no service
usable without an open subscription (R-CON-2, R-DEC-1), through ``POST /v1/check/batch``.

Counts: every write is counted by kind and outcome (committed / refused); they are exposed as
``hypothesis.event`` (``--hypothesis-show-statistics``) and printed at the end (``-s``), and the
test fails if some main kind was never committed or never refused (it must not pass vacuously).
Size: ``PDP_STATEFUL_EXAMPLES`` / ``PDP_STATEFUL_STEPS`` override the CI defaults.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from hypothesis.statistics import collector, describe_statistics
from sqlalchemy.engine import make_url

from pdp.core.catalogue import load_catalogue
from pdp.core.config import Settings
from pdp.records.audit_trail import AuditChain
from pdp.services.tokens import mint
from pdp.web.container import services

from conftest import reset_postgres, write_demo
from support.constants import SECRET, MakeApp
from support.stateful import (
    admins_at_most_two,
    decision_checks,
    is_open,
    load_world,
    not_ended,
    one_manager_per_group,
    subgroup_roles_in_parent,
)

EXAMPLES = int(os.environ.get("PDP_STATEFUL_EXAMPLES", "20"))
STEPS = int(os.environ.get("PDP_STATEFUL_STEPS", "80"))
# PDP_STATEFUL_SHRINK=0: report the first failure as found (shrinking a long run takes minutes).
PHASES = (
    tuple(Phase)
    if os.environ.get("PDP_STATEFUL_SHRINK", "1") != "0"
    else (Phase.explicit, Phase.reuse, Phase.generate)
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

# The families of operations every run must both commit and refuse at least once (it must not
# pass vacuously); a family rather than each kind, so that the assertion does not depend on how
# Hypothesis happens to spread one run's steps over the rules.
FAMILIES = {
    "users (fiches 1-3)": ("create_user", "edit_user", "close_user"),
    "memberships (fiches 4, 6)": ("attach", "detach"),
    "groups (fiches 7, 10, 11)": ("create_group", "create_subgroup", "close_group", "edit_group"),
    "managers (fiches 14, 16)": ("set_manager",),
    "roles (fiches 12, 13)": ("assign_role", "remove_role"),
    "partner admins (R-ADM-1)": ("designate_admin", "end_admin"),
    "contract (R-CON-4)": ("contract", "create_organisation"),
    "afas profiles (R-AFAS)": ("afas_profile",),
}

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
        self.tokens: dict[str, str] = {}
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

    def token(self, login: str) -> str:
        if login not in self.tokens:
            self.tokens[login] = mint(Settings(jwt_secret=SECRET), login)
        return self.tokens[login]


def _d(day: dt.date | None) -> str | None:
    return None if day is None else day.isoformat()


class AdminMachine(RuleBasedStateMachine):
    """Random administrative writes by random actors; the rules checked after each."""

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.h = harness
        self.today = harness.today
        self.app = harness.fresh()
        self.client: FlaskClient = self.app.test_client()
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
        headers = {"Authorization": f"Bearer {self.h.token(who)}"}
        return self.client.open(path, method=method, headers=headers, json=body)

    def may(self, actor: str, action: str, target: str) -> tuple[bool, str]:
        """The public admin check (R-ADM-7): (allowed, reason code)."""
        response = self.client.post(
            "/v1/admin/check", json={"actor": actor, "action": action, "target": target}
        )
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
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

    # -- users (fiches 1-3) ------------------------------------------------------------------------

    @rule(data=st.data())
    def create_user(self, data: st.DataObject) -> None:
        org = self.draw_org(data)
        actor = self.draw_actor(data, org)
        body = self.new_user(data)
        opens = self.draw_day(data, "opens_on")
        closes = self.draw_day(data, "closes_on", none=8)
        if opens is not None:
            body["opens_on"] = _d(opens)
        if closes is not None:
            body["closes_on"] = _d(closes)
        start = opens or self.today
        expect: list[tuple[int, str]] = []
        if start < self.today:
            expect.append((400, "RETROACTIVE_DATE"))  # R-TIME-2: nothing starts in the past
        if closes is not None and closes <= start:
            expect.append((400, "INVALID_DATES"))
        if closes is not None and closes < self.today:
            expect.append((400, "RETROACTIVE_DATE"))  # R-USR-4
        if self.world.user(body["login"]) is not None:
            expect.append((409, "LOGIN_TAKEN"))  # R-USR-1: unique in the portal
        self.write(
            "create_user",
            actor,
            "POST",
            f"/v1/organisations/{org}/users",
            body,
            "user.create",
            f"organisation:{org}",
            expect,
        )

    @rule(data=st.data())
    def edit_user(self, data: st.DataObject) -> None:
        org = self.draw_org(data)
        actor = self.draw_actor(data, org)
        login = self.draw_login(data, org, "user")
        fields = data.draw(
            st.sets(
                st.sampled_from(["first_name", "last_name", "email", "opens_on"]),
                min_size=data.draw(st.sampled_from([1] * 9 + [0]), label="empty allowed"),
                max_size=3,
            ),
            label="fields",
        )
        body: dict[str, Any] = {}
        for name in sorted(fields):
            if name == "email":
                body[name] = f"{login}.new@example.fr"
            elif name == "opens_on":
                body[name] = _d(self.draw_day(data, "new opening", none=0, past=1, future=3))
            else:
                body[name] = f"{name}-{self.serial}"
        user = self.world.user(login)
        expect: Expect = []
        if not body:
            expect = [(400, "EMPTY_EDIT")]
        elif user is None or user["organisation_id"] != self.world.org_id(org):
            expect = [(404, "UNKNOWN_USER")]
        elif "opens_on" in body:
            # Only an opening still to come moves, and not to the past (R-TIME-2).
            new = dt.date.fromisoformat(body["opens_on"])
            if user["opens_on"] <= self.today or new < self.today:
                expect = [(409, "USER_STARTED")]
            elif user["closes_on"] is not None and user["closes_on"] <= new:
                expect = [(400, "INVALID_DATES")]
        self.write(
            "edit_user",
            actor,
            "PATCH",
            f"/v1/organisations/{org}/users/{login}",
            body,
            "user.edit",
            f"user:{login}",
            expect,
        )

    @rule(data=st.data())
    def close_user(self, data: st.DataObject) -> None:
        org = self.draw_org(data)
        actor = self.draw_actor(data, org)
        login = self.draw_login(data, org, "user")
        closes = self.draw_day(data, "closes_on", none=1, past=1, future=3)
        w = self.world
        user = w.user(login)
        expect: Expect = []
        if user is None or user["organisation_id"] != w.org_id(org):
            expect = [(404, "UNKNOWN_USER")]
        else:
            if closes is not None and closes < self.today:
                expect.append((400, "RETROACTIVE_DATE"))  # R-USR-4
            if not not_ended(user, self.today):
                expect.append((409, "USER_CLOSED"))  # R-TIME-2: a closed account stays closed
            if closes is not None and w.afas_profiles(login):
                expect.append((409, "AFAS_PROFILES_REMAIN"))  # R-AFAS-3
            # R-USR-4: closing on the opening day is allowed (closed at once), not before it.
            if closes is not None and closes < user["opens_on"]:
                expect.append((400, "INVALID_DATES"))
            if closes is not None and self._manages_later(login, closes):
                expect.append((409, "USER_MANAGES_GROUPS"))  # R-ADM-3: replace them first
        self.write(
            "close_user",
            actor,
            "PATCH",
            f"/v1/organisations/{org}/users/{login}",
            {"closes_on": _d(closes)},
            "user.close",
            f"user:{login}",
            expect,
        )

    def _manages_later(self, login: str, day: dt.date) -> bool:
        """Whether ``login`` still manages, on ``day`` or later, a group still open then."""
        w = self.world
        u = w.user(login)
        assert u is not None
        for m in w.tables["group_managers"]:
            g = w.group_by_id[m["group_id"]]
            if (
                m["user_id"] == u["id"]
                and (m["closes_on"] is None or m["closes_on"] > day)
                and (g["closes_on"] is None or g["closes_on"] > day)
            ):
                return True
        return False

    # -- memberships (fiches 4, 6) ---------------------------------------------------------------

    @rule(data=st.data())
    def attach(self, data: st.DataObject) -> None:
        org = self.draw_org(data)
        actor = self.draw_actor(data, org)
        login = self.draw_login(data, org, "user")
        code = self.draw_group(data, org, "group")
        opens = self.draw_day(data, "opens_on", none=5)
        closes = self.draw_day(data, "closes_on", none=8, past=0)
        body: dict[str, Any] = {"group": code}
        if opens is not None:
            body["opens_on"] = _d(opens)
        if closes is not None:
            body["closes_on"] = _d(closes)
        w = self.world
        user, grp = w.user(login), w.group(org, code)
        start = opens or self.today
        expect: Expect = []
        if user is None or user["organisation_id"] != w.org_id(org):
            expect = [(404, "UNKNOWN_USER")]
        elif grp is None:
            expect = [(404, "UNKNOWN_GROUP")]
        else:
            if start < self.today:
                expect.append((400, "RETROACTIVE_DATE"))  # R-TIME-2
            if closes is not None and closes <= start:
                expect.append((400, "INVALID_DATES"))
            if not is_open(user, start):
                expect.append((409, "USER_NOT_OPEN"))  # R-MEM-1
            if not is_open(grp, start):
                expect.append((409, "GROUP_NOT_OPEN"))  # R-MEM-1
            if any(g["id"] == grp["id"] for _, g in w.memberships(login)):
                expect.append((409, "ALREADY_MEMBER"))
        self.write(
            "attach",
            actor,
            "POST",
            f"/v1/organisations/{org}/users/{login}/memberships",
            body,
            "group.members.edit",
            f"group:{org}/{code}",
            expect,
        )

    @rule(data=st.data())
    def detach(self, data: st.DataObject) -> None:
        org = self.draw_org(data, unknown=False)
        actor = self.draw_actor(data, org)
        w = self.world
        current = [
            (u["login"], g["code"]) for u in w.users(org) for _, g in w.memberships(u["login"])
        ]
        if current and data.draw(st.sampled_from([True] * 4 + [False]), label="a membership"):
            login, code = data.draw(st.sampled_from(current), label="membership")
        else:
            login = self.draw_login(data, org, "user")
            code = self.draw_group(data, org, "group")
        how = data.draw(st.sampled_from(["DELETE", "PATCH"]), label="how")
        closes = self.today if how == "DELETE" else self.draw_day(data, "closes_on", none=0)
        body = None if how == "DELETE" else {"closes_on": _d(closes)}
        user = w.user(login)
        expect: Expect = []
        if user is None or user["organisation_id"] != w.org_id(org):
            expect = [(404, "UNKNOWN_USER")]
        elif w.group(org, code) is None:
            expect = [(404, "UNKNOWN_GROUP")]
        elif (login, code) not in current:
            expect = [(404, "NOT_A_MEMBER")]
        elif closes is not None and closes < self.today:
            expect = [(400, "RETROACTIVE_DATE")]  # R-MEM-2
        self.write(
            "detach",
            actor,
            how,
            f"/v1/organisations/{org}/users/{login}/memberships/{code}",
            body,
            "group.members.edit",
            f"group:{org}/{code}",
            expect,
        )

    # -- groups (fiches 7, 10, 11, 14, 16) -------------------------------------------------------

    def draw_manager(self, data: st.DataObject, org: str) -> dict[str, Any]:
        """A manager to name: mostly an open user of ``org``, sometimes anyone, or a new user."""
        how = data.draw(st.sampled_from(["open"] * 4 + ["any", "new_user"]), label="manager")
        if how == "new_user":
            return {"new_user": self.new_user(data)}
        open_own = [u["login"] for u in self.world.users(org) if is_open(u, self.today)]
        if how == "open" and open_own:
            return {"login": data.draw(st.sampled_from(open_own), label="manager login")}
        return {"login": self.draw_login(data, org, "manager login")}

    def manager_expect(
        self, org: str, manager: dict[str, Any], day: dt.date, until: dt.date | None
    ) -> list[tuple[int, str]]:
        """What naming ``manager`` of a group open from ``day`` until ``until`` may earn
        (R-ADM-3: an open user of the organisation, for as long as the group is open)."""
        w = self.world
        if "new_user" in manager:
            taken = w.user(manager["new_user"]["login"]) is not None
            return [(409, "LOGIN_TAKEN")] if taken else []
        user = w.user(manager["login"])
        if user is None or user["organisation_id"] != w.org_id(org):
            return [(404, "UNKNOWN_USER")]
        closes_first = user["closes_on"] is not None and (
            until is None or until > user["closes_on"]
        )
        return [] if is_open(user, day) and not closes_first else [(409, "MANAGER_NOT_OPEN")]

    def _create_group(self, data: st.DataObject, sub: bool) -> None:
        org = self.draw_org(data)
        actor = self.draw_actor(data, org)
        w = self.world
        codes = [g["code"] for g in w.groups(org)]
        if codes and data.draw(st.sampled_from([False] * 5 + [True]), label="code taken"):
            code = data.draw(st.sampled_from(codes), label="taken code")
        else:
            code = self.fresh_name("G")
        refs = [c["reference"] for c in w.conventions(org)]
        manager = self.draw_manager(data, org)
        opens = self.draw_day(data, "opens_on", none=8)
        closes = self.draw_day(data, "closes_on", none=8, past=0)
        body: dict[str, Any] = {"code": code, "label": f"Groupe {code}", "manager": manager}
        if opens is not None:
            body["opens_on"] = _d(opens)
        if closes is not None:
            body["closes_on"] = _d(closes)
        start = opens or self.today
        expect: list[tuple[int, str]] = []
        if start < self.today:
            expect.append((400, "RETROACTIVE_DATE"))  # R-TIME-2
        if closes is not None and closes <= start:
            expect.append((400, "INVALID_DATES"))
        if code in codes:
            expect.append((409, "GROUP_CODE_TAKEN"))  # R-GRP-1
        if sub:
            parent_code = self.draw_group(data, org, "parent")
            body["parent"] = parent_code
            parent = w.group(org, parent_code)
            choice = data.draw(st.sampled_from(["none"] * 4 + ["parent's", "other"]), label="conv")
            parent_ref = (
                next(
                    c["reference"] for c in w.conventions(org) if c["id"] == parent["convention_id"]
                )
                if parent is not None
                else None
            )
            if choice == "parent's" and parent_ref is not None:
                body["convention"] = parent_ref
            elif choice == "other":
                body["convention"] = "CONV-AUTRE"
                expect.append((400, "SUBGROUP_CONVENTION"))  # R-GRP-1
            if parent is None:
                expect = [(404, "UNKNOWN_GROUP")]
            else:
                if parent["is_system"]:
                    expect.append((409, "SYSTEM_GROUP"))  # R-GRP-3
                if not is_open(parent, start):
                    expect.append((409, "GROUP_NOT_OPEN"))
            action, target = "group.create_sub", f"group:{org}/{parent_code}"
        else:
            pool = [*refs, *refs, *refs, *refs, "CONV-INCONNUE", None]
            ref = data.draw(st.sampled_from(pool), label="conv")
            if ref is not None:
                body["convention"] = ref
            conv = next((c for c in w.conventions(org) if c["reference"] == ref), None)
            if ref is None:
                expect.append((400, "MISSING_FIELD"))  # R-GRP-1
            elif conv is None:
                expect.append((404, "UNKNOWN_CONVENTION"))
            elif not is_open(conv, start):
                expect.append((409, "CONVENTION_CLOSED"))
            action, target = "group.create_top", f"organisation:{org}"
        until = closes
        parent_row = w.group(org, body["parent"]) if sub else None
        if parent_row is not None and parent_row["closes_on"] is not None:
            # R-GRP-2: a sub-group closes with its parent.
            until = min(closes or parent_row["closes_on"], parent_row["closes_on"])
        expect += self.manager_expect(org, manager, start, until)
        self.write(
            "create_subgroup" if sub else "create_group",
            actor,
            "POST",
            f"/v1/organisations/{org}/groups",
            body,
            action,
            target,
            expect,
            also=("user.create",),
        )

    @rule(data=st.data())
    def create_group(self, data: st.DataObject) -> None:
        self._create_group(data, sub=False)

    @rule(data=st.data())
    def create_subgroup(self, data: st.DataObject) -> None:
        self._create_group(data, sub=True)

    @rule(data=st.data())
    def set_manager(self, data: st.DataObject) -> None:
        org = self.draw_org(data)
        actor = self.draw_actor(data, org)
        code = self.draw_group(data, org, "group")
        w = self.world
        grp = w.group(org, code)
        current = None if grp is None else w.current_manager(grp)
        replaces = data.draw(st.sampled_from(["current"] * 5 + ["stale", "none"]), label="replaces")
        body = self.draw_manager(data, org)
        if replaces == "current" and current is not None:
            body["replaces"] = current
        elif replaces == "stale":
            body["replaces"] = data.draw(
                st.sampled_from([u["login"] for u in w.users(org)] or [GHOST])
            )
        expect: list[tuple[int, str]] = []
        if grp is None:
            expect = [(404, "UNKNOWN_GROUP")]
        else:
            if grp["is_system"]:
                expect.append((409, "SYSTEM_GROUP"))  # R-GRP-3
            if not not_ended(grp, self.today):
                expect.append((409, "GROUP_CLOSED"))
            if body.get("replaces") != current:
                expect.append((409, "MANAGER_CHANGED"))  # R-ADM-3: no silent overwrite
            if body.get("login") is not None and body["login"] == current:
                expect.append((409, "ALREADY_MANAGER"))
            expect += self.manager_expect(org, body, self.today, grp["closes_on"])
        self.write(
            "set_manager",
            actor,
            "PUT",
            f"/v1/organisations/{org}/groups/{code}/manager",
            body,
            "group.manager.set",
            f"group:{org}/{code}",
            expect,
            also=("user.create",),
        )

    @rule(data=st.data())
    def close_group(self, data: st.DataObject) -> None:
        org = self.draw_org(data)
        actor = self.draw_actor(data, org)
        code = self.draw_group(data, org, "group")
        how = data.draw(st.sampled_from(["close", "close", "closes_on", "label"]), label="how")
        grp = self.world.group(org, code)
        expect: list[tuple[int, str]] = []
        if grp is None:
            expect = [(404, "UNKNOWN_GROUP")]
        elif grp["is_system"]:
            expect = [(409, "SYSTEM_GROUP")]  # R-GRP-3
        path = f"/v1/organisations/{org}/groups/{code}"
        if how == "close":
            if grp is not None and not grp["is_system"] and not not_ended(grp, self.today):
                expect.append((409, "GROUP_CLOSED"))
            self.write(
                "close_group", actor, "POST", f"{path}/close", None, "group.close",
                f"group:{org}/{code}", expect,
            )  # fmt: skip
        elif how == "closes_on":
            closes = self.draw_day(data, "closes_on", none=0, future=3)
            if grp is not None and closes is not None and closes < self.today:
                expect.append((400, "RETROACTIVE_DATE"))  # R-TIME-2
            self.write(
                "close_group", actor, "PATCH", path, {"closes_on": _d(closes)}, "group.close",
                f"group:{org}/{code}", expect,
            )  # fmt: skip
        else:
            self.write(
                "edit_group", actor, "PATCH", path, {"label": f"Libellé {self.serial}"},
                "group.edit", f"group:{org}/{code}", expect,
            )  # fmt: skip

    # -- roles (fiches 12, 13) -------------------------------------------------------------------

    @rule(data=st.data())
    def assign_role(self, data: st.DataObject) -> None:
        org = self.draw_org(data)
        actor = self.draw_actor(data, org)
        code = self.draw_group(data, org, "group")
        w = self.world
        grp = w.group(org, code)
        parent = None if grp is None else w.parent(grp)
        # The parent's roles (assignable to a sub-group), the roles of the group's subscribed
        # services (for a sub-group, mostly ones its parent lacks: R-GRP-4), a few others.
        in_parent = sorted(w.roles(parent, self.today)) if parent is not None else []
        subscribed = (
            [p for p in PAIRS if p[0] in w.subscribed(org, self.today, grp["convention_id"])]
            if grp is not None
            else []
        )
        pool = (
            in_parent * 6
            + subscribed
            + subscribed[:2] * 3
            + PAIRS[:: max(1, len(PAIRS) // 8)]
            + [("cdap", "T99")]
        )
        service, role = data.draw(st.sampled_from(pool), label="role")
        expect: list[tuple[int, str]] = []
        if role not in CATALOGUE.services[service].roles:
            expect = [(400, "UNKNOWN_ROLE")]
        elif grp is None:
            expect = [(404, "UNKNOWN_GROUP")]
        else:
            if grp["is_system"]:
                expect.append((409, "SYSTEM_GROUP"))  # R-GRP-3
            if not is_open(grp, self.today):
                expect.append((409, "GROUP_CLOSED"))
            if (service, role) in w.roles_not_ended(grp):
                expect.append((409, "ROLE_ALREADY_ASSIGNED"))
            if service not in w.subscribed(org, self.today, grp["convention_id"]):
                expect.append((409, "SERVICE_NOT_SUBSCRIBED"))  # R-GRP-4
            if parent is not None and (service, role) not in w.roles(parent, self.today):
                expect.append((409, "SUBGROUP_ROLE_NOT_IN_PARENT"))  # R-GRP-4
        self.write(
            "assign_role",
            actor,
            "POST",
            f"/v1/organisations/{org}/groups/{code}/roles",
            {"service": service, "role": role},
            "group.roles.edit",
            f"group:{org}/{code}",
            expect,
        )

    @rule(data=st.data())
    def remove_role(self, data: st.DataObject) -> None:
        org = self.draw_org(data)
        actor = self.draw_actor(data, org)
        code = self.draw_group(data, org, "group")
        w = self.world
        grp = w.group(org, code)
        held = sorted(w.roles_not_ended(grp)) if grp is not None else []
        service, role = data.draw(
            st.sampled_from(held * 4 + [("cdap", "T2"), ("afas", "declarer")])
        )
        expect: list[tuple[int, str]] = []
        if grp is None:
            expect = [(404, "UNKNOWN_GROUP")]
        else:
            if grp["is_system"]:
                expect.append((409, "SYSTEM_GROUP"))  # R-GRP-3
            if (service, role) not in held:
                expect.append((404, "ROLE_NOT_ASSIGNED"))
        self.write(
            "remove_role",
            actor,
            "DELETE",
            f"/v1/organisations/{org}/groups/{code}/roles/{service}/{role}",
            None,
            "group.roles.edit",
            f"group:{org}/{code}",
            expect,
        )

    # -- the Caf side: partner admins, contract (R-CON-4, R-ADM-1) --------------------------------

    @rule(data=st.data())
    def designate_admin(self, data: st.DataObject) -> None:
        org = self.draw_org(data)
        actor = self.draw_actor(data, org, CAF_SIDE)
        w = self.world
        if data.draw(st.sampled_from(["login"] * 3 + ["new_user"]), label="who") == "login":
            body: dict[str, Any] = {"login": self.draw_login(data, org, "admin login")}
            user = w.user(body["login"])
        else:
            body = {"new_user": self.new_user(data)}
            user = None
        expect: list[tuple[int, str]] = []
        if "new_user" in body:
            if w.user(body["new_user"]["login"]) is not None:
                expect = [(409, "LOGIN_TAKEN")]
            user = {"login": body["new_user"]["login"], "opens_on": self.today, "closes_on": None}
        elif user is None or user["organisation_id"] != w.org_id(org):
            expect = [(404, "UNKNOWN_USER")]
        if not expect and user is not None:
            designated = w.designations_not_ended(org)
            if not is_open(user, self.today):
                expect.append((409, "USER_NOT_OPEN"))
            if any(u["login"] == user["login"] for _, u in designated):
                expect.append((409, "ALREADY_ADMIN"))
            # R-ADM-1: a third open partner admin is refused (closed users do not count).
            if sum(not_ended(u, self.today) for _, u in designated) >= 2:
                expect.append((409, "TOO_MANY_ADMINS"))
        self.write(
            "designate_admin",
            actor,
            "POST",
            f"/v1/organisations/{org}/admins",
            body,
            "admins.designate",
            f"organisation:{org}",
            expect,
            also=("user.create",),
        )

    @rule(data=st.data())
    def end_admin(self, data: st.DataObject) -> None:
        org = self.draw_org(data)
        actor = self.draw_actor(data, org, CAF_SIDE)
        w = self.world
        designated = [u["login"] for _, u in w.designations_not_ended(org)]
        if designated and data.draw(st.sampled_from([True] * 3 + [False]), label="an admin"):
            login = data.draw(st.sampled_from(designated), label="admin")
        else:
            login = self.draw_login(data, org, "login")
        closes = self.draw_day(data, "closes_on", none=3, future=2)
        body = {} if closes is None else {"closes_on": _d(closes)}
        user = w.user(login)
        expect: list[tuple[int, str]] = []
        if user is None or user["organisation_id"] != w.org_id(org):
            expect = [(404, "UNKNOWN_USER")]
        elif login not in designated:
            expect = [(404, "NOT_AN_ADMIN")]
        elif closes is not None and closes < self.today:
            expect = [(400, "RETROACTIVE_DATE")]  # R-TIME-2
        self.write(
            "end_admin",
            actor,
            "DELETE",
            f"/v1/organisations/{org}/admins/{login}",
            body,
            "admins.designate",
            f"organisation:{org}",
            expect,
        )

    @rule(data=st.data())
    def contract(self, data: st.DataObject) -> None:
        """Conventions and subscriptions (R-CON-1, R-CON-2, R-CON-4): operators only."""
        org = self.draw_org(data)
        actor = self.draw_actor(data, org, CAF_SIDE)
        w = self.world
        refs = [c["reference"] for c in w.conventions(org)]
        what = data.draw(
            st.sampled_from(
                ["add_sub", "add_sub", "edit_sub", "edit_sub", "add_conv", "edit_conv"]
            ),
            label="contract op",
        )
        base = f"/v1/organisations/{org}"
        expect: Expect = None
        if what == "add_conv":
            ref = data.draw(st.sampled_from([*refs, None]), label="ref") or self.fresh_name("CONV-")
            caf = data.draw(st.sampled_from(CAFS), label="caf")
            body: dict[str, Any] = {"caf": caf, "reference": ref}
            opens = self.draw_day(data, "opens_on", none=6)
            if opens is not None:
                body["opens_on"] = _d(opens)
            expect = []
            if caf == "999":
                expect = [(404, "UNKNOWN_CAF")]
            elif ref in refs:
                expect = [(409, "CONVENTION_EXISTS")]
            elif opens is not None and opens < self.today:
                expect = [(400, "RETROACTIVE_DATE")]  # R-TIME-2
            path, method = f"{base}/conventions", "POST"
        elif what == "edit_conv":
            ref = data.draw(st.sampled_from([*refs, "CONV-INCONNUE"]), label="ref")
            closes = self.draw_day(data, "closes_on", none=0, future=3)
            body = {"closes_on": _d(closes)}
            if ref not in refs:
                expect = [(404, "UNKNOWN_CONVENTION")]
            path, method = f"{base}/conventions/{ref}", "PATCH"
        elif what == "add_sub":
            ref = data.draw(st.sampled_from([*refs, *refs, "CONV-INCONNUE"]), label="ref")
            service = data.draw(st.sampled_from([*SERVICES, "minitel"]), label="service")
            body = {"service": service}
            if service == "minitel":
                expect = [(400, "UNKNOWN_SERVICE")]
            elif ref not in refs:
                expect = [(404, "UNKNOWN_CONVENTION")]
            path, method = f"{base}/conventions/{ref}/subscriptions", "POST"
        else:
            subs = [s["id"] for s in w.subscriptions(org)]
            sub_id = data.draw(st.sampled_from([*subs, *subs, 99999]), label="subscription")
            closes = self.draw_day(data, "closes_on", none=0, future=3)
            body = {"closes_on": _d(closes)}
            if sub_id not in subs:
                expect = [(404, "UNKNOWN_SUBSCRIPTION")]
            path, method = f"{base}/subscriptions/{sub_id}", "PATCH"
        self.write(
            "contract", actor, method, path, body, "contract.manage", f"organisation:{org}", expect
        )

    @rule(data=st.data())
    def create_organisation(self, data: st.DataObject) -> None:
        org = self.draw_org(data)
        actor = self.draw_actor(data, org, CAF_SIDE)
        code = data.draw(st.sampled_from([org, None]), label="code") or self.fresh_name("org-")
        taken = self.world.org_id(code) is not None
        self.write(
            "create_organisation",
            actor,
            "POST",
            "/v1/organisations",
            {"code": code, "name": f"Organisme {code}"},
            "organisation.create",
            "platform",
            [(409, "ORGANISATION_EXISTS")] if taken else [],
        )

    # -- Afas profiles (R-AFAS) ------------------------------------------------------------------

    @rule(data=st.data())
    def afas_profile(self, data: st.DataObject) -> None:
        org = data.draw(st.sampled_from(["asso-entraide"] * 4 + ORGS), label="org")
        actor = self.draw_actor(data, org, ("admin", "admin", "manager", "plain", "other_org"))
        w = self.world
        holders = [u["login"] for u in w.users(org) if w.afas_profiles(u["login"])]
        if holders and data.draw(st.booleans(), label="a holder"):
            login = data.draw(st.sampled_from(holders), label="holder")
        else:
            login = self.draw_login(data, org, "user")
        user = w.user(login)
        held = w.afas_profiles(login)
        in_org = user is not None and user["organisation_id"] == w.org_id(org)
        path = f"/v1/organisations/{org}/users/{login}/afas-profiles"
        add = data.draw(st.sampled_from(["add", "add", "remove"]), label="how") == "add"
        fresh = [p for p in AFAS_PROFILES if p not in held]
        likely = fresh if add else held
        profile = data.draw(st.sampled_from(likely * 4 + AFAS_PROFILES + ["astrologie"]))
        if add:
            expect: list[tuple[int, str]] = []
            if profile not in AFAS_PROFILES:
                expect = [(400, "UNKNOWN_PROFILE")]
            elif not in_org:
                expect = [(404, "UNKNOWN_USER")]
            else:
                assert user is not None
                if not is_open(user, self.today):
                    expect.append((409, "USER_NOT_OPEN"))
                if profile in held:
                    expect.append((409, "PROFILE_EXISTS"))
            self.write(
                "afas_profile", actor, "POST", path, {"profile": profile}, "afas.profiles.edit",
                f"user:{login}", expect,
            )  # fmt: skip
        else:
            expect = (
                [(404, "UNKNOWN_USER")]
                if not in_org
                else ([] if profile in held else [(404, "NO_SUCH_PROFILE")])
            )
            self.write(
                "afas_profile", actor, "DELETE", f"{path}/{profile}", None, "afas.profiles.edit",
                f"user:{login}", expect,
            )  # fmt: skip

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


def test_random_administration_keeps_the_rules(
    request: pytest.FixtureRequest,
    backend: str,
    demo_db: str,
    make_app: MakeApp,
    today: dt.date,
) -> None:
    """Random administrative writes by random actors; every rule holds after every step."""
    harness = Harness(request, backend, demo_db, make_app, today)
    started = time.perf_counter()

    def note_statistics(stats: dict[str, Any]) -> None:
        # The machine runs inside a plain test: hand its statistics (the events counted by
        # ``write``) to Hypothesis's pytest plugin, for --hypothesis-show-statistics.
        stats["nodeid"] = request.node.nodeid
        request.node.hypothesis_statistics = describe_statistics(stats)

    with collector.with_value(note_statistics):
        run_state_machine_as_test(
            lambda: AdminMachine(harness),
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,  # no example database written into the tree
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                phases=PHASES,
                print_blob=True,
            ),
        )
    elapsed = time.perf_counter() - started
    kinds = sorted({k for k, _ in harness.outcomes})
    lines = [
        f"{backend}: {harness.examples} examples, {harness.steps} writes in {elapsed:.1f} s "
        f"({sum(n for (_, o), n in harness.outcomes.items() if o == 'committed')} committed)"
    ]
    for kind in kinds:
        lines.append(
            f"  {kind:20} committed {harness.outcomes[(kind, 'committed')]:4}"
            f"  refused {harness.outcomes[(kind, 'refused')]:4}"
        )
    lines.append("  refusals: " + ", ".join(f"{c} ×{n}" for c, n in harness.codes.most_common()))
    print("\n".join(lines))
    # Not vacuous: every family was both committed and refused somewhere in the run.
    missing = [
        f"{family} never {outcome}"
        for family, kinds in FAMILIES.items()
        for outcome in ("committed", "refused")
        if not sum(harness.outcomes[(kind, outcome)] for kind in kinds)
    ]
    assert not missing, "\n".join([*missing, *lines])
