"""Users and memberships: fiches 1 to 6 (R-USR, R-MEM)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from pdp.adapters.sql.models import (
    AfasProfile,
    Group,
    GroupManager,
    Membership,
    Organisation,
    PartnerAdmin,
    User,
)
from pdp.core.errors import BadRequest, Conflict, NotFound
from pdp.engine.actions import Action
from pdp.engine.rules import Target, is_partner_admin, managed_groups
from pdp.engine.snapshot import USER
from pdp.records.last_use import last_uses
from pdp.services import paging
from pdp.services.admin import store
from pdp.services.admin.requests import MembershipEdit, MembershipNew, NewUser, UserEdit
from pdp.services.admin.responses import (
    LastUseItem,
    MembershipItem,
    MembershipOut,
    MembershipWritten,
    ServiceAccess,
    UserAfasProfile,
    UserDetail,
    UserDetailOut,
    UserList,
    UserWritten,
)
from pdp.services.admin.service import AdminService, Tx


def create_user_in(tx: Tx, org: Organisation, data: NewUser, *, authorise: bool = True) -> User:
    """Insert a user of ``org`` (R-USR-1, R-USR-2: no rights yet); 409 if the login is taken.
    ``authorise=False``: the caller's own action covers it (an operator designating a new
    partner admin, R-CON-4)."""
    if authorise:
        tx.authorise(Action.USER_CREATE, Target("organisation", org.code))
    opens_on = data.opens_on or tx.today
    if opens_on < tx.today:
        # R-TIME-2: nothing starts in the past (a user "open" on days already decided would
        # change what those days answer), like groups, memberships and Afas profiles.
        raise BadRequest(
            "Un compte ne peut pas ouvrir dans le passé (R-TIME-2).", "RETROACTIVE_DATE"
        )
    store.check_window(opens_on, data.closes_on)
    store.not_in_past(data.closes_on, tx.today, "La date de clôture")
    taken = tx.session.execute(select(User.id).where(User.login == data.login)).first()
    if taken is not None:
        raise Conflict(
            f"L'identifiant {data.login!r} est déjà utilisé sur le portail (R-USR-1).",
            code="LOGIN_TAKEN",
        )
    user = User(
        login=data.login,
        organisation_id=org.id,
        first_name=data.first_name,
        last_name=data.last_name,
        email=data.email,
        opens_on=opens_on,
        closes_on=data.closes_on,
        is_operator=False,
    )
    tx.session.add(user)
    tx.session.flush()
    tx.record(
        f"user:{user.login}",
        org.code,
        None,
        store.user_out(user, org.code).model_dump(mode="json"),
        org.id,
        action=Action.USER_CREATE,
        scope=(USER, user.id),
    )
    return user


def resolve_user(tx: Tx, org: Organisation, login: str | None, new: NewUser | None) -> User:
    """An existing user of ``org`` by login, or one created now (the guide's shortcut)."""
    if (login is None) == (new is None):
        raise BadRequest("Donner soit « login », soit « new_user ».", code="VALIDATION_ERROR")
    if new is not None:
        return create_user_in(tx, org, new)
    assert login is not None
    return store.user(tx.session, org, login)


def create_user(svc: AdminService, actor: str, org_code: str, data: NewUser) -> UserWritten:
    """Fiche 1: create a user of the organisation."""
    with svc.write(actor, Action.USER_CREATE, Target("organisation", org_code)) as tx:
        org = store.organisation(tx.session, org_code)
        user = create_user_in(tx, org, data)
        out = store.user_out(user, org.code)
    return UserWritten(user=out, revision=tx.revision)


def edit_user(
    svc: AdminService, actor: str, org_code: str, login: str, data: UserEdit
) -> UserWritten:
    """Fiches 2 and 3: edit a user; a closing date closes them (R-USR-3, R-USR-4, R-AFAS-3)."""
    fields = data.model_fields_set
    if not fields:
        raise BadRequest("Aucune modification demandée.", code="EMPTY_EDIT")
    action = Action.USER_CLOSE if "closes_on" in fields else Action.USER_EDIT
    with svc.write(actor, action, Target("user", login=login)) as tx:
        org = store.organisation(tx.session, org_code)
        user = store.user(tx.session, org, login)
        before = store.user_out(user, org.code).model_dump(mode="json")
        store.set_details(user, data, fields)
        if "opens_on" in fields:
            if data.opens_on is None:
                raise BadRequest("« opens_on » ne peut pas être vide.", code="VALIDATION_ERROR")
            # Like a group's or a membership's: only a future opening moves, and not to the past
            # (R-TIME-2: the past is kept; an open user is closed by fiche 3, R-USR-4).
            if user.opens_on <= tx.today or data.opens_on < tx.today:
                raise Conflict(
                    "Seule l'ouverture d'un compte à venir peut changer, et pas vers le passé.",
                    code="USER_STARTED",
                )
            user.opens_on = data.opens_on
        if "closes_on" in fields:
            _close_user(tx, user, data.closes_on)
        if "opens_on" in fields:
            store.check_window(user.opens_on, user.closes_on)
        elif "closes_on" in fields:
            # Closing on the opening day leaves the empty window [d, d): never open (R-USR-4,
            # R-TIME-1), like a membership, a group or a designation ended the day it began.
            store.check_closing(user.opens_on, user.closes_on)
        out = store.user_out(user, org.code)
        tx.record(f"user:{login}", org.code, before, out.model_dump(mode="json"), org.id)
    return UserWritten(user=out, revision=tx.revision)


def _close_user(tx: Tx, user: User, closes_on: dt.date | None) -> None:
    store.not_in_past(closes_on, tx.today, "La date de clôture d'un utilisateur")  # R-USR-4
    if not store.not_ended(user, tx.today):
        # Reopening (or moving the closing date of) a closed account would rewrite the days
        # it was closed (R-TIME-2), like reopening a group.
        raise Conflict(f"Le compte {user.login} est clôturé : il ne se rouvre pas.", "USER_CLOSED")
    if closes_on is not None:
        profiles = tx.session.execute(
            select(AfasProfile.profile).where(
                AfasProfile.user_id == user.id,
                (AfasProfile.closes_on.is_(None)) | (AfasProfile.closes_on > tx.today),
            )
        ).scalars()
        remaining = sorted(set(profiles))
        if remaining:
            raise Conflict(
                "Retirer d'abord les profils Afas de l'utilisateur avant de le clôturer "
                f"(R-AFAS-3) : {', '.join(remaining)}.",
                code="AFAS_PROFILES_REMAIN",
                details={"profiles": remaining},
            )
        managed = tx.session.execute(
            select(Group.code)
            .join(GroupManager, GroupManager.group_id == Group.id)
            .where(
                GroupManager.user_id == user.id,
                (GroupManager.closes_on.is_(None)) | (GroupManager.closes_on > closes_on),
                (Group.closes_on.is_(None)) | (Group.closes_on > closes_on),
            )
        ).scalars()
        groups = sorted(set(managed))
        if groups:
            raise Conflict(
                "Cet utilisateur est responsable habilitations : le remplacer d'abord "
                f"(R-ADM-3) pour : {', '.join(groups)}.",
                code="USER_MANAGES_GROUPS",
                details={"groups": groups},
            )
    user.closes_on = closes_on


def list_users(
    svc: AdminService,
    actor: str,
    org_code: str,
    group_code: str | None,
    *,
    q: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> UserList:
    """Fiche 5: the organisation's users, or the members of one group today (R-USR-6), by
    login; those matching ``q`` (login, names or email, case ignored); ``limit`` of them after
    ``cursor`` (None: all), with the next page's cursor."""
    today = svc.today()
    with svc.read(actor, Action.DIRECTORY_READ, Target("organisation", org_code)) as session:
        org = store.organisation(session, org_code)
        stmt = select(User).where(User.organisation_id == org.id).order_by(User.login)
        if group_code is not None:
            grp = store.group(session, org, group_code)
            stmt = stmt.where(
                User.id.in_(
                    select(Membership.user_id).where(
                        Membership.group_id == grp.id,
                        Membership.opens_on <= today,
                        (Membership.closes_on.is_(None)) | (Membership.closes_on > today),
                    )
                )
            )
        if q is not None:
            pattern = paging.like(q)
            stmt = stmt.where(
                or_(
                    *(
                        func.lower(column).like(pattern, escape="\\")
                        for column in (User.login, User.first_name, User.last_name, User.email)
                    )
                )
            )
        if cursor is not None:
            stmt = stmt.where(User.login > paging.decode(cursor))
        if limit is not None:
            stmt = stmt.limit(limit + 1)
        rows = list(session.execute(stmt).scalars())
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        users = [store.user_out(u, org.code) for u in rows]
    next_cursor = paging.encode(rows[-1].login) if more else None
    return UserList(organisation=org_code, group=group_code, users=users, next_cursor=next_cursor)


def find_user(svc: AdminService, actor: str, login: str) -> UserDetail:
    """A partner's user by login alone (logins are the portal's, R-USR-1): their detail, read
    with ``directory.read`` on their organisation (operators; partner admins and managers of
    that organisation). 404 UNKNOWN_USER for a login that names no partner's user."""
    with svc.uow.begin() as session:
        found = session.execute(
            select(Organisation.code)
            .join(User, User.organisation_id == Organisation.id)
            .where(User.login == login)
        ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"Utilisateur inconnu : {login!r}.", code="UNKNOWN_USER")
    return user_detail(svc, actor, found, login)


def user_detail(svc: AdminService, actor: str, org_code: str, login: str) -> UserDetail:
    """Fiche 5: a user's detail: memberships, roles today, groups managed (R-USR-6)."""
    today = svc.today()
    with svc.read(actor, Action.DIRECTORY_READ, Target("organisation", org_code)) as session:
        org = store.organisation(session, org_code)
        user = store.user(session, org, login)
        memberships = [
            MembershipItem(
                group=code,
                opens_on=m.opens_on,
                closes_on=m.closes_on,
                open=store.is_open(m, today),
                # Not ended (open now or later): its dates may still change (R-MEM-2, R-TIME-2).
                editable=store.not_ended(m, today),
            )
            for m, code in session.execute(
                select(Membership, Group.code)
                .join(Group, Group.id == Membership.group_id)
                .where(Membership.user_id == user.id)
                .order_by(Group.code, Membership.opens_on)
            )
        ]
        manages = sorted(
            {
                g.code
                for m, g in session.execute(
                    select(GroupManager, Group)
                    .join(Group, Group.id == GroupManager.group_id)
                    .where(GroupManager.user_id == user.id)
                )
                if store.is_open(m, today) and store.is_open(g, today)
            }
        )
        partner_admin = any(
            store.is_open(a, today)
            for a in session.execute(
                select(PartnerAdmin).where(
                    PartnerAdmin.user_id == user.id, PartnerAdmin.organisation_id == org.id
                )
            ).scalars()
        )
        afas_profiles = [
            UserAfasProfile(profile=p.profile, opens_on=p.opens_on, closes_on=p.closes_on)
            for p in session.execute(
                select(AfasProfile)
                .where(AfasProfile.user_id == user.id)
                .order_by(AfasProfile.profile, AfasProfile.opens_on)
            ).scalars()
            if store.not_ended(p, today)
        ]
        public = store.user_out(user, org.code)
        found = last_uses(session, [login], masker=svc.masker)
        used = {(service, role): day for (_, service, role), day in found.items()}
    permissions = svc.engine.permissions(login, today)
    held = {(service, g.role) for service, (grants, _) in permissions.items() for g in grants}
    out = UserDetailOut(
        **public.model_dump(),
        memberships=memberships,
        manages=manages,
        partner_admin=partner_admin,
        afas_profiles=afas_profiles,
        services=[
            ServiceAccess(service=service, roles=sorted({g.role for g in grants}), cafs=cafs)
            for service, (grants, cafs) in permissions.items()
        ],
        # R-CNIL-1: every right held today, and every right used before, with its last use.
        last_uses=[
            LastUseItem(service=s, role=r, last_used_on=used.get((s, r)))
            for s, r in sorted(held | used.keys())
        ],
    )
    return UserDetail(user=out, revision=svc.engine.revision)


ROLE_LABELS = {
    "operator": "opérateur Caf",
    "admin": "administrateur partenaire",
    "manager": "responsable habilitations",
    "plain": "utilisateur",
}


def demo_accounts(svc: AdminService) -> list[dict[str, str]]:
    """The users open today, by organisation then login, each with their administrative role
    today (``role``: operator, admin, manager or plain; ``role_label``: in French) and their
    organisation's code ("" for a Caf operator): the console's demo sign-in page (development
    only: nothing is authorised, no one is signed in yet)."""
    engine = svc.engine
    engine.refresh()
    index = engine.index
    day = svc.today().toordinal()
    out = []
    for user in index.users.values():
        if not user.start <= day < user.end:
            continue
        org = user.org
        if user.is_operator:
            role = "operator"
        elif org is not None and is_partner_admin(org, user.id, day):
            role = "admin"
        elif org is not None and managed_groups(index, user, org, day):
            role = "manager"
        else:
            role = "plain"
        out.append(
            {
                "login": user.login,
                "organisation": org.code if org is not None else "",
                "role": role,
                "role_label": ROLE_LABELS[role],
            }
        )
    return sorted(out, key=lambda a: (a["organisation"], a["login"]))


def attach(
    svc: AdminService, actor: str, org_code: str, login: str, data: MembershipNew
) -> MembershipWritten:
    """Fiche 4: attach a user to a group (R-MEM-1: open user, open group, same organisation)."""
    with svc.write(actor, Action.GROUP_MEMBERS_EDIT, Target("group", org_code, data.group)) as tx:
        org = store.organisation(tx.session, org_code)
        user = store.user(tx.session, org, login)
        grp = store.group(tx.session, org, data.group)
        after = attach_in(tx, org, user, grp, data.opens_on, data.closes_on)
    return MembershipWritten(membership=after, revision=tx.revision)


def attach_in(
    tx: Tx,
    org: Organisation,
    user: User,
    grp: Group,
    opens_on: dt.date | None,
    closes_on: dt.date | None,
) -> MembershipOut:
    """Attach ``user`` to ``grp`` in the open write ``tx`` from ``opens_on`` (today by default)
    (R-MEM-1: open user, open group, not already a member; R-TIME-2: not in the past)."""
    login = user.login
    start = opens_on or tx.today
    if start < tx.today:
        raise BadRequest(
            "Un rattachement ne peut pas commencer dans le passé (R-TIME-2).",
            code="RETROACTIVE_DATE",
        )
    store.check_window(start, closes_on)
    if not store.is_open(user, start):
        raise Conflict(
            "L'utilisateur n'est pas ouvert à cette date (R-MEM-1).", code="USER_NOT_OPEN"
        )
    if not store.is_open(grp, start):
        raise Conflict("Le groupe n'est pas ouvert à cette date (R-MEM-1).", "GROUP_NOT_OPEN")
    if _current_membership(tx.session, user.id, grp.id, tx.today) is not None:
        raise Conflict(f"{login} est déjà rattaché au groupe {grp.code}.", code="ALREADY_MEMBER")
    membership = Membership(user_id=user.id, group_id=grp.id, opens_on=start, closes_on=closes_on)
    tx.session.add(membership)
    tx.session.flush()
    after = _membership_out(login, grp, membership)
    tx.record(
        f"user:{login}",
        org.code,
        None,
        after.model_dump(mode="json"),
        org.id,
        action=Action.GROUP_MEMBERS_EDIT,
        related=f"group:{org.code}/{grp.code}",
        scope=(USER, user.id),
    )
    return after


def _membership_out(login: str, grp: Group, membership: Membership) -> MembershipOut:
    """The public form of a membership (as the audit trail records it)."""
    return MembershipOut(
        user=login, group=grp.code, opens_on=membership.opens_on, closes_on=membership.closes_on
    )


def _current_membership(
    session: Session, user_id: int, group_id: int, today: dt.date
) -> Membership | None:
    """The user's membership of the group that has not ended (open now or later), if any."""
    return session.execute(
        select(Membership)
        .where(
            Membership.user_id == user_id,
            Membership.group_id == group_id,
            (Membership.closes_on.is_(None)) | (Membership.closes_on > today),
        )
        .order_by(Membership.opens_on.desc())
        .limit(1)
    ).scalar_one_or_none()


def edit_membership(
    svc: AdminService,
    actor: str,
    org_code: str,
    login: str,
    group_code: str,
    data: MembershipEdit,
) -> MembershipWritten:
    """Fiche 6: change a membership's dates; a closing date detaches (R-MEM-2: not in the past).
    An empty body detaches today."""
    fields = data.model_fields_set
    with svc.write(actor, Action.GROUP_MEMBERS_EDIT, Target("group", org_code, group_code)) as tx:
        org = store.organisation(tx.session, org_code)
        user = store.user(tx.session, org, login)
        grp = store.group(tx.session, org, group_code)
        membership = _current_membership(tx.session, user.id, grp.id, tx.today)
        if membership is None:
            raise NotFound(f"{login} n'est pas rattaché au groupe {group_code}.", "NOT_A_MEMBER")
        before = _membership_out(login, grp, membership).model_dump(mode="json")
        if "opens_on" in fields:
            if data.opens_on is None or membership.opens_on <= tx.today or data.opens_on < tx.today:
                raise Conflict(
                    "Seul le début d'un rattachement à venir peut changer, et pas vers le passé.",
                    code="MEMBERSHIP_STARTED",
                )
            membership.opens_on = data.opens_on
        if "closes_on" in fields or not fields:
            closes_on = data.closes_on if fields else tx.today
            store.not_in_past(closes_on, tx.today, "La date de fin de rattachement")  # R-MEM-2
            membership.closes_on = closes_on
        if "opens_on" in fields:
            store.check_window(membership.opens_on, membership.closes_on)
        after = _membership_out(login, grp, membership)
        tx.record(
            f"user:{login}",
            org.code,
            before,
            after.model_dump(mode="json"),
            org.id,
            related=f"group:{org.code}/{grp.code}",
            scope=(USER, user.id),
        )
    return MembershipWritten(membership=after, revision=tx.revision)
