"""The state machine of the access reviews' property test (tests/services/test_stateful_reviews.py).

Each example starts from a fresh copy of the demo, made a little richer through the API (four
more users of mairie-montreuil in its groups, one of them manager of CCAS-INSTRUCTION), then
opens one campaign: the operator over every organisation, or mairie-montreuil's partner admin
over it, with or without ``remove_unreviewed``. Steps: random actors keep or remove random items
(previews among them), list their items, read the progress, try to close the campaign. At the end
the campaign is closed by whoever opened it.

Checked after every step, from the database: no item changed unless its own reviewer decided it,
a decision is never made by anyone but the item's reviewer (R-CNIL-23); every answer is the one
the model predicts. At the end: every item is kept, removed or reported (R-CNIL-26), and the
store equals the store before minus exactly the removals (R-CNIL-24, R-CNIL-26): the removed
items' memberships end today, and nothing else of any domain table changed.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import Engine, text

from pdp.web.container import services

from support.actors import Api
from support.admin_bodies import new_user
from support.admin_machine import Harness
from support.constants import MAIRIE, MAIRIE_CODE, OPERATOR, PARTNER_ADMIN

# What a review may change: memberships (a removal ends one today); the rest must stay whole.
UNTOUCHED = (
    "organisations",
    "conventions",
    "subscriptions",
    "users",
    "groups",
    "group_roles",
    "partner_admins",
    "group_managers",
    "afas_profiles",
)
EXTRA = (("rev.u1", "CCAS-ACCUEIL"), ("rev.u2", "CCAS-INSTRUCTION"), ("rev.u3", "CCAS"))
EXTRA_MANAGER = "rev.m1"  # made manager of CCAS-INSTRUCTION, and member of it


def rows(db: Engine, table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table``, ordered by id."""
    with db.connect() as conn:
        found = conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))
        return [tuple(_plain(v) for v in r) for r in found]


def _plain(value: Any) -> Any:
    """Dates as ISO text, as SQLite holds them (one form on both drivers)."""
    return value.isoformat() if isinstance(value, dt.date) else value


class ReviewMachine(RuleBasedStateMachine):
    """One campaign, random reviewers acting in random order."""

    def __init__(self, harness: Harness) -> None:
        super().__init__()
        self.h = harness
        self.today = harness.today
        self.app = harness.fresh()
        self.api = Api(self.app.test_client())
        self.db = services(self.app).db
        self._enrich()
        self.before = {t: rows(self.db, t) for t in (*UNTOUCHED, "memberships")}
        with self.db.connect() as conn:
            users = conn.execute(text("SELECT login, opens_on, closes_on FROM users")).all()
        today = self.today.isoformat()
        self.actors = sorted({u.login for u in users} | {"ghost.user"})
        # Who cannot act (R-USR-4, unknown): 401 whatever they ask.
        self.outsiders = {"ghost.user"} | {
            u.login
            for u in users
            if _plain(u.opens_on) > today or (u.closes_on and _plain(u.closes_on) <= today)
        }
        self.campaign = 0
        self.opener = ""
        self.remove_unreviewed = False
        self.closed = False
        self.items: dict[int, dict[str, Any]] = {}  # id -> the model of the item

    def _enrich(self) -> None:
        ok = self.api.ok
        for login, group in (*EXTRA, (EXTRA_MANAGER, "CCAS-INSTRUCTION")):
            ok(PARTNER_ADMIN, "POST", f"{MAIRIE}/users", new_user(login), 201)
            ok(PARTNER_ADMIN, "POST", f"{MAIRIE}/users/{login}/memberships", {"group": group}, 201)
        ok(
            PARTNER_ADMIN,
            "PUT",
            f"{MAIRIE}/groups/CCAS-INSTRUCTION/manager",
            {"login": EXTRA_MANAGER, "replaces": "bruno.petit"},
        )

    def count(self, kind: str, outcome: str) -> None:
        self.h.outcomes[(kind, outcome)] += 1
        self.h.steps += 1

    # -- the opening -------------------------------------------------------------------------

    @initialize(national=st.booleans(), remove=st.booleans())
    def open_campaign(self, national: bool, remove: bool) -> None:
        due = (self.today + dt.timedelta(days=30)).isoformat()
        body: dict[str, Any] = {"due_on": due, "remove_unreviewed": remove}
        if national:
            self.opener, body["all_organisations"] = OPERATOR, True
        else:
            self.opener, body["organisations"] = PARTNER_ADMIN, [MAIRIE_CODE]
        out = self.api.ok(self.opener, "POST", "/v1/reviews", body, 201)
        self.campaign = out["campaign"]["id"]
        self.remove_unreviewed = remove
        for item in self.stored():
            self.items[item["id"]] = item
        assert len(self.items) == out["items"] > 0
        assert self.stored_memberships() == self.before["memberships"]

    def stored(self) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT id, reviewer, outcome, removed, decided_by, membership_id "
                    "FROM review_items WHERE campaign_id = :c ORDER BY id"
                ),
                {"c": self.campaign},
            )
            return [dict(r._mapping) | {"removed": bool(r.removed)} for r in found]

    def stored_memberships(self) -> list[tuple[Any, ...]]:
        return rows(self.db, "memberships")

    # -- the steps ---------------------------------------------------------------------------

    @rule(data=st.data())
    def decide(self, data: st.DataObject) -> None:
        """A random actor keeps or removes a random item (or one that does not exist)."""
        ids = sorted(self.items)
        item_id = data.draw(st.sampled_from([*ids, *ids, max(ids) + 1000]), label="item")
        item = self.items.get(item_id)
        reviewers = sorted({i["reviewer"] for i in self.items.values() if i["reviewer"]})
        own = data.draw(st.sampled_from([True, True, False]), label="its reviewer")
        if own and item is not None and item["reviewer"]:
            who = item["reviewer"]
        else:
            who = data.draw(st.sampled_from([*reviewers, *self.actors]), label="actor")
        decision = data.draw(st.sampled_from(["keep", "remove"]), label="decision")
        dry = data.draw(st.sampled_from([False, False, False, True]), label="dry_run")
        path = f"/v1/reviews/{self.campaign}/items/{item_id}/decision"
        r = self.api.call(
            who, "POST", path, {"decision": decision}, query={"dry_run": "true"} if dry else None
        )
        out = r.get_json()
        if who in self.outsiders:
            assert r.status_code == 401, out
        elif item is None or item["reviewer"] != who:
            # R-CNIL-23: never another reviewer's item (nor a hint that it exists)
            assert (r.status_code, out["error"]["code"]) == (404, "REVIEW_ITEM_UNKNOWN"), out
        elif self.closed:
            assert (r.status_code, out["error"]["code"]) == (409, "REVIEW_CLOSED"), out
        elif item["outcome"] != "pending":
            assert (r.status_code, out["error"]["code"]) == (409, "REVIEW_ITEM_DECIDED"), out
        else:
            assert r.status_code == 200, out
            if not dry:
                item["outcome"] = "kept" if decision == "keep" else "removed"
                item["removed"] = decision == "remove"
                item["decided_by"] = who
        self.count(f"decide ({'preview' if dry else decision})", str(r.status_code))

    @rule(data=st.data())
    def look(self, data: st.DataObject) -> None:
        """A random actor lists their items: exactly theirs (R-CNIL-23)."""
        who = data.draw(st.sampled_from(self.actors), label="actor")
        r = self.api.call(who, "GET", f"/v1/reviews/{self.campaign}/items", query={"limit": 500})
        theirs = sorted(i for i, item in self.items.items() if item["reviewer"] == who)
        if who in self.outsiders:
            assert r.status_code == 401, r.get_json()
        elif r.status_code == 200:
            assert [i["id"] for i in r.get_json()["items"]] == theirs
        else:
            assert r.status_code == 404 and not theirs, r.get_json()
        self.count("look", str(r.status_code))

    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        """Someone tries to close the campaign: only the opener's side may (R-CNIL-26); the
        machine closes it rarely, so that most steps happen while it is open."""
        if not data.draw(st.sampled_from([False] * 7 + [True]), label="close now"):
            self.decide(data)  # (a rule is drawn as often as any other)
            return
        who = data.draw(
            st.sampled_from(
                [self.opener, "bruno.petit", "chloe.roux", EXTRA_MANAGER, "ines.moreau"]
            ),
            label="closer",
        )
        r = self.api.call(who, "POST", f"/v1/reviews/{self.campaign}/close")
        if who == self.opener:
            if self.closed:
                assert (r.status_code, r.get_json()["error"]["code"]) == (409, "REVIEW_CLOSED")
            else:
                assert r.status_code == 200, r.get_json()
                self._closed()
        else:
            assert r.status_code == 403, r.get_json()
        self.count("close", str(r.status_code))

    def _closed(self) -> None:
        self.closed = True
        for item in self.items.values():
            if item["outcome"] == "pending":
                item["outcome"] = "reported"
                item["removed"] = self.remove_unreviewed

    # -- what always holds -------------------------------------------------------------------

    @invariant()
    def items_as_modelled(self) -> None:
        """Every item is as the model says: changed only by its own reviewer's decision."""
        if not self.campaign:
            return
        for stored in self.stored():
            model = self.items[stored["id"]]
            assert stored["outcome"] == model["outcome"], (stored, model)
            assert stored["removed"] == model["removed"], (stored, model)
            if stored["outcome"] in ("kept", "removed"):
                assert stored["decided_by"] == stored["reviewer"]

    def teardown(self) -> None:
        """Close the campaign if still open, then: every item ended kept, removed or reported;
        the store is the store before minus exactly the removals."""
        if not self.campaign:
            return
        if not self.closed:
            r = self.api.call(self.opener, "POST", f"/v1/reviews/{self.campaign}/close")
            assert r.status_code == 200, r.get_json()
            self._closed()
        self.items_as_modelled()
        outcomes = Counter(i["outcome"] for i in self.items.values())
        assert set(outcomes) <= {"kept", "removed", "reported"}, outcomes
        for table in UNTOUCHED:
            assert rows(self.db, table) == self.before[table], table
        removed = {i["membership_id"] for i in self.items.values() if i["removed"]}
        expected = []
        for row in self.before["memberships"]:
            if row[0] in removed:  # (id, user_id, group_id, opens_on, closes_on)
                expected.append((*row[:-1], self.today.isoformat()))
            else:
                expected.append(row)
        after = self.stored_memberships()
        assert after == expected
        self.h.outcomes[("items", "removed")] += len(removed)
