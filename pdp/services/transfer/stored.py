"""What an organisation holds already, read once for its import (``org_import``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import (
    AfasProfile,
    Caf,
    Convention,
    Group,
    GroupManager,
    GroupRole,
    Membership,
    PartnerAdmin,
    Subscription,
    User,
)
from pdp.services.transfer import format as fmt


def load(
    session: Session,
    org_id: int,
    named: dict[type[Any], dict[str, tuple[int, dict[str, Any]]]],
    stored: dict[type[Any], Counter[tuple[Any, ...]]],
) -> None:
    """Fill ``named`` (key → id and fields) and ``stored`` (a multiset of association rows)
    with organisation ``org_id``'s rows, natural keys only, in seven queries."""
    s = session

    def rows(query: Any) -> Iterable[tuple[Any, ...]]:
        return (tuple(r) for r in s.execute(query))

    conv = named[fmt.ConventionRec]
    for cid, ref, caf, o, c in rows(
        select(
            Convention.id,
            Convention.reference,
            Caf.code,
            Convention.opens_on,
            Convention.closes_on,
        )
        .join(Caf, Caf.id == Convention.caf_id)
        .where(Convention.organisation_id == org_id)
    ):
        conv[ref] = (cid, {"caf": caf, "opens_on": o, "closes_on": c})
    users = named[fmt.UserRec]
    for uid, login, first, last, email, o, c in rows(
        select(
            User.id,
            User.login,
            User.first_name,
            User.last_name,
            User.email,
            User.opens_on,
            User.closes_on,
        ).where(User.organisation_id == org_id)
    ):
        users[login] = (
            uid,
            {
                "first_name": first,
                "last_name": last,
                "email": email,
                "opens_on": o,
                "closes_on": c,
            },
        )
    groups = list(
        rows(
            select(
                Group.id,
                Group.code,
                Group.label,
                Convention.reference,
                Group.parent_id,
                Group.is_system,
                Group.opens_on,
                Group.closes_on,
            )
            .join(Convention, Convention.id == Group.convention_id)
            .where(Group.organisation_id == org_id)
        )
    )
    code_of = {g[0]: g[1] for g in groups}
    for gid, code, label, ref, parent, system, o, c in groups:
        named[fmt.GroupRec][code] = (
            gid,
            {
                "label": label,
                "convention": ref,
                "parent": code_of.get(parent),
                "system": bool(system),
                "opens_on": o,
                "closes_on": c,
            },
        )
    in_org = Convention.organisation_id == org_id
    grp = Group.organisation_id == org_id
    queries: dict[type[Any], Any] = {
        fmt.SubscriptionRec: select(
            Convention.reference,
            Subscription.service,
            Subscription.opens_on,
            Subscription.closes_on,
        )
        .join(Convention, Convention.id == Subscription.convention_id)
        .where(in_org),
        fmt.PartnerAdminRec: select(User.login, PartnerAdmin.opens_on, PartnerAdmin.closes_on)
        .join(User, User.id == PartnerAdmin.user_id)
        .where(PartnerAdmin.organisation_id == org_id),
        fmt.GroupRoleRec: select(
            Group.code,
            GroupRole.service,
            GroupRole.role,
            GroupRole.opens_on,
            GroupRole.closes_on,
        )
        .join(Group, Group.id == GroupRole.group_id)
        .where(grp),
        fmt.GroupManagerRec: select(
            Group.code, User.login, GroupManager.opens_on, GroupManager.closes_on
        )
        .join(Group, Group.id == GroupManager.group_id)
        .join(User, User.id == GroupManager.user_id)
        .where(grp),
        fmt.MembershipRec: select(Group.code, User.login, Membership.opens_on, Membership.closes_on)
        .join(Group, Group.id == Membership.group_id)
        .join(User, User.id == Membership.user_id)
        .where(grp),
        fmt.AfasProfileRec: select(
            User.login, AfasProfile.profile, AfasProfile.opens_on, AfasProfile.closes_on
        )
        .join(User, User.id == AfasProfile.user_id)
        .where(User.organisation_id == org_id),
    }
    for kind, query in queries.items():
        stored[kind].update(rows(query))
