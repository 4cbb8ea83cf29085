"""The administration API's response bodies, for the OpenAPI document; the typed results of
the verbs that return them (the API answers their fields in the order declared here)."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from pdp.engine.rules import AdminReason


class Open(BaseModel):
    """Documented fields; more may be present."""

    model_config = ConfigDict(extra="allow")


class Notice(BaseModel):
    """Something the actor should know after a successful write (e.g. R-AFAS-4)."""

    code: str
    message: str


class Written(Open):
    """A committed write: the new policy revision, visible to the next decision."""

    revision: int = Field(description="The policy revision this write produced.")
    notices: list[Notice] = Field(default_factory=list)


class UserOut(BaseModel):
    """A user."""

    login: str
    organisation: str | None
    first_name: str
    last_name: str
    email: str
    opens_on: dt.date
    closes_on: dt.date | None


class UserWritten(BaseModel):
    """The user as written."""

    user: UserOut
    revision: int = Field(description="The policy revision this write produced.")


class UserList(BaseModel):
    """Users of an organisation, or members of one group today; or the users who may be named
    a group's manager (R-ADM-3)."""

    organisation: str
    group: str | None
    users: list[UserOut]
    next_cursor: str | None = Field(
        default=None, description="The next page's cursor; null on the last page."
    )


class MembershipItem(BaseModel):
    """A membership of the user, ``open`` today or not, and whether its dates may still change
    (``editable``: it has not ended, R-MEM-2, R-TIME-2)."""

    group: str
    opens_on: dt.date
    closes_on: dt.date | None
    open: bool
    editable: bool


class UserAfasProfile(BaseModel):
    """An Afas profile of the user that has not ended (R-AFAS-1)."""

    profile: str
    opens_on: dt.date
    closes_on: dt.date | None


class ServiceAccess(BaseModel):
    """A service the user may use today, with their roles and Cafs (R-DEC-4)."""

    service: str
    roles: list[str]
    cafs: list[str]


class LastUseItem(BaseModel):
    """A right of the user (held today, or used before) and the last day an allowed check used
    it (R-CNIL-1; null: never used)."""

    service: str
    role: str
    last_used_on: dt.date | None


class UserDetailOut(UserOut):
    """A user with memberships, groups managed today, whether a partner admin today, Afas
    profiles, services usable today and the last use of each right."""

    memberships: list[MembershipItem]
    manages: list[str]
    partner_admin: bool
    afas_profiles: list[UserAfasProfile]
    services: list[ServiceAccess]
    last_uses: list[LastUseItem]


class UserDetail(BaseModel):
    """A user with memberships, groups managed, Afas profiles and services usable today. Each
    membership says whether it is ``open`` today and whether its dates may still change
    (``editable``: it has not ended)."""

    user: UserDetailOut
    revision: int


class MembershipOut(BaseModel):
    """A membership: the user, the group and its dates."""

    user: str
    group: str
    opens_on: dt.date
    closes_on: dt.date | None


class MembershipWritten(BaseModel):
    """A membership as written."""

    membership: MembershipOut
    revision: int = Field(description="The policy revision this write produced.")


class GroupOut(BaseModel):
    """A group (without its manager and sub-groups)."""

    code: str
    organisation: str
    label: str
    parent: str | None
    system: bool
    opens_on: dt.date
    closes_on: dt.date | None


class NewGroupOut(GroupOut):
    """A group as created, with its manager (R-ADM-3)."""

    manager: str


class GroupWritten(BaseModel):
    """A group as created."""

    group: NewGroupOut
    revision: int = Field(description="The policy revision this write produced.")


class GroupEdited(BaseModel):
    """A group as edited or closed; ``closed`` lists every group a closing date closed (the
    group and its sub-groups, R-GRP-2). ``parent`` is not looked up here: always null."""

    group: GroupOut
    closed: list[str]
    revision: int = Field(description="The policy revision this write produced.")


class GroupAndManagerEdited(BaseModel):
    """A group edited and its manager named in one write (fiches 10, 14, 16): ``manager`` and
    ``previous`` when a manager was named."""

    group: GroupOut
    closed: list[str]
    manager: str | None
    previous: str | None
    notices: list[Notice]
    revision: int = Field(description="The policy revision this write produced.")


class GroupItem(GroupOut):
    """A group (R-GRP-5), and what its state still allows, whoever acts (who may is the
    engine's admin check, R-ADM-7): ``editable`` and ``closable`` are false for a system group
    (R-GRP-3) and for a group whose closing day is reached (R-GRP-2)."""

    manager: str | None
    open: bool
    editable: bool
    closable: bool


class GroupList(BaseModel):
    """Groups of an organisation, each with its manager's login; or those under which the
    actor may create a sub-group."""

    organisation: str
    groups: list[GroupItem]
    next_cursor: str | None = Field(
        default=None, description="The next page's cursor; null on the last page."
    )


class GroupManagerOut(BaseModel):
    """A group's current manager (R-ADM-3), since when and until when."""

    login: str
    first_name: str
    last_name: str
    opens_on: dt.date
    closes_on: dt.date | None


class RoleName(BaseModel):
    """A role of a service."""

    service: str
    role: str


class RoleOut(RoleName):
    """A role a group holds, and its dates."""

    opens_on: dt.date
    closes_on: dt.date | None


class GroupDetailOut(GroupOut):
    """A group: convention, manager, sub-groups, roles, members today, and what its state
    still allows (as ``GroupItem``)."""

    convention: str | None
    manager: GroupManagerOut | None
    subgroups: list[str]
    roles: list[RoleOut]
    members: list[str]
    open: bool
    editable: bool
    closable: bool


class GroupDetail(BaseModel):
    """A group: manager, parent, convention, sub-groups, roles, members."""

    group: GroupDetailOut


class GroupRoles(BaseModel):
    """A group's roles, and the roles it could be given (R-GRP-4)."""

    group: str
    roles: list[RoleOut]
    assignable: list[RoleName]


class RoleWritten(BaseModel):
    """A role assigned or removed; ``groups`` lists every group it changed."""

    groups: list[str]
    revision: int = Field(description="The policy revision this write produced.")


class RolesWritten(BaseModel):
    """Roles removed then assigned in one write (fiches 12, 13); ``groups`` lists every group
    changed."""

    groups: list[str]
    assigned: list[RoleName]
    removed: list[RoleName]
    revision: int = Field(description="The policy revision this write produced.")


class ManagerWritten(BaseModel):
    """A group's manager named or replaced; ``notices`` says what the actor should know
    (R-AFAS-4)."""

    group: str
    manager: str
    previous: str | None
    notices: list[Notice]
    revision: int = Field(description="The policy revision this write produced.")


class AdminCheckReason(BaseModel):
    """The engine's reason."""

    code: AdminReason
    message: str


class AdminCheckResponse(BaseModel):
    """The engine's answer to "may actor A do action X on target T" (R-ADM-7)."""

    allowed: bool
    reason: AdminCheckReason
    decision_id: str
    revision: int


REVISION_DOC = "The policy revision this write produced."


class OrganisationOut(BaseModel):
    """A partner organisation (R-CON-4)."""

    code: str
    name: str
    kind: str
    opens_on: str
    closes_on: str | None


class OrganisationWritten(BaseModel):
    """An organisation as registered (R-CON-4)."""

    organisation: OrganisationOut
    revision: int = Field(description=REVISION_DOC)


class OrganisationItem(OrganisationOut):
    """A registered organisation (R-CON-4), and whether it is ``open`` today."""

    open: bool


class OrganisationList(BaseModel):
    """Every registered organisation by code (operators)."""

    organisations: list[OrganisationItem]


class ConventionOut(BaseModel):
    """A convention with one Caf (R-CON-1), without its subscriptions."""

    reference: str
    caf: str
    opens_on: str
    closes_on: str | None


class SubscriptionOut(BaseModel):
    """A subscription (bulletin d'adhésion) to one service under a convention (R-CON-1)."""

    id: int
    convention: str = Field(description="The convention's reference.")
    service: str
    opens_on: str
    closes_on: str | None


class SubscriptionItem(SubscriptionOut):
    """A subscription of the contract, and whether it is ``open`` today."""

    open: bool


class ConventionItem(ConventionOut):
    """A convention of the contract, whether it is ``open`` today, and its subscriptions."""

    open: bool
    subscriptions: list[SubscriptionItem]


class DesignationOut(BaseModel):
    """A partner admin designation (R-ADM-1): the user's login and its dates."""

    login: str
    opens_on: str
    closes_on: str | None


class DesignationItem(DesignationOut):
    """A designation of the contract: ``open`` today, and ``current`` (it has not ended: it
    may still end)."""

    open: bool
    current: bool


class ContractOut(BaseModel):
    """An organisation's contract: conventions with their subscriptions, partner admins. Each
    designation says whether it is ``open`` today and whether it is ``current`` (it has not
    ended: it may still end)."""

    organisation: OrganisationItem
    conventions: list[ConventionItem]
    admins: list[DesignationItem]


class ConventionWritten(BaseModel):
    """A convention as written (R-CON-1)."""

    convention: ConventionOut
    revision: int = Field(description=REVISION_DOC)


class SubscriptionWritten(BaseModel):
    """A subscription (bulletin d'adhésion) as written (R-CON-1, R-CON-2)."""

    subscription: SubscriptionOut
    revision: int = Field(description=REVISION_DOC)


class AdminWritten(BaseModel):
    """A partner admin designation as written (R-ADM-1); ``created_user`` is the user when it
    was created in the same transaction, else null."""

    admin: DesignationOut
    created_user: UserOut | None
    revision: int = Field(description=REVISION_DOC)


class AdminEnded(BaseModel):
    """A partner admin designation as ended (R-TIME-2)."""

    admin: DesignationOut
    revision: int = Field(description=REVISION_DOC)


class AfasProfileOut(BaseModel):
    """A user's Afas profile (R-AFAS-1)."""

    user: str = Field(description="The user's login.")
    profile: str
    opens_on: str
    closes_on: str | None


class AfasProfileItem(AfasProfileOut):
    """An Afas profile, and whether it is ``open`` today."""

    open: bool


class AfasProfiles(BaseModel):
    """A user's Afas profiles that have not ended (R-AFAS-1)."""

    organisation: str
    user: str
    profiles: list[AfasProfileItem]


class AfasProfileWritten(BaseModel):
    """An Afas profile as written (R-AFAS-1)."""

    profile: AfasProfileOut
    revision: int = Field(description=REVISION_DOC)
