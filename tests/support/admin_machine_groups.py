"""The stateful test's rules on groups: create a group or a sub-group, name its manager, close
or edit it, assign and remove its roles (fiches 7 to 16), each with the refusals the state
before predicts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from support.admin_machine import CATALOGUE, GHOST, PAIRS, AdminMachineBase, iso
from support.stateful import is_open, not_ended


class GroupRules(AdminMachineBase):
    """Groups (fiches 7, 10, 11), managers (fiches 14, 16) and roles (fiches 12, 13)."""

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
            body["opens_on"] = iso(opens)
        if closes is not None:
            body["closes_on"] = iso(closes)
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
                "close_group", actor, "PATCH", path, {"closes_on": iso(closes)}, "group.close",
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
