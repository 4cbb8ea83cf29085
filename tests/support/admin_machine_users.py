"""The stateful test's rules on users and their memberships (fiches 1 to 6): create, edit and
close a user, attach and detach a member, each with the refusals the state before predicts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from support.admin_machine import AdminMachineBase, Expect, iso
from support.stateful import is_open, not_ended


class UserRules(AdminMachineBase):
    """Users (fiches 1-3) and memberships (fiches 4, 6)."""

    # -- users (fiches 1-3) ------------------------------------------------------------------------

    @rule(data=st.data())
    def create_user(self, data: st.DataObject) -> None:
        org = self.draw_org(data)
        actor = self.draw_actor(data, org)
        body = self.new_user(data)
        opens = self.draw_day(data, "opens_on")
        closes = self.draw_day(data, "closes_on", none=8)
        if opens is not None:
            body["opens_on"] = iso(opens)
        if closes is not None:
            body["closes_on"] = iso(closes)
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
                body[name] = iso(self.draw_day(data, "new opening", none=0, past=1, future=3))
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
            {"closes_on": iso(closes)},
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
            body["opens_on"] = iso(opens)
        if closes is not None:
            body["closes_on"] = iso(closes)
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
        body = None if how == "DELETE" else {"closes_on": iso(closes)}
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
