"""The stateful test's rules on the Caf side and Afas: designate and end partner admins
(R-ADM-1), register conventions, subscriptions and organisations (R-CON-4), add and remove Afas
profiles (R-AFAS), each with the refusals the state before predicts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from support.admin_machine import (
    AFAS_PROFILES,
    CAF_SIDE,
    CAFS,
    ORGS,
    SERVICES,
    AdminMachineBase,
    Expect,
    iso,
)
from support.stateful import is_open, not_ended


class CafRules(AdminMachineBase):
    """Partner admins, the contract, organisations (R-CON-4, R-ADM-1), Afas profiles (R-AFAS)."""

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
        body = {} if closes is None else {"closes_on": iso(closes)}
        user = w.user(login)
        expect: list[tuple[int, str]] = []
        if user is None or user["organisation_id"] != w.org_id(org):
            expect = [(404, "UNKNOWN_USER")]
        elif login not in designated:
            expect = [(404, "NOT_AN_ADMIN")]
        elif closes is not None and closes < self.today:
            expect = [(400, "RETROACTIVE_DATE")]  # R-TIME-2
        elif self.hands_nothing_over(org, login, closes or self.today):
            expect = [(409, "SYSTEM_GROUPS_NEED_ADMIN")]  # R-GRP-3, R-ADM-3
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

    def hands_nothing_over(self, org: str, login: str, day: dt.date) -> bool:
        """Whether ``login`` manages a system group of ``org`` still open on ``day`` and no
        other partner admin is open that day to take it over (R-GRP-3, R-ADM-3)."""
        w = self.world
        manages = any(
            g["is_system"] and not_ended(g, day) and w.current_manager(g) == login
            for g in w.groups(org)
        )
        users = {u["id"]: u for u in w.tables["users"]}
        successor = any(
            a["organisation_id"] == w.org_id(org)
            and users[a["user_id"]]["login"] != login
            and is_open(a, day)
            and is_open(users[a["user_id"]], day)
            for a in w.tables["partner_admins"]
        )
        return manages and not successor

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
                body["opens_on"] = iso(opens)
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
            body = {"closes_on": iso(closes)}
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
            body = {"closes_on": iso(closes)}
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
