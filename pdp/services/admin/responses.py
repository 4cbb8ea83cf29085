"""The administration API's response bodies, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

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


class UserOut(Open):
    """A user."""

    login: str
    organisation: str | None
    first_name: str
    last_name: str
    email: str
    opens_on: str
    closes_on: str | None


class UserWritten(Written):
    """The user as written."""

    user: UserOut


class UserList(Open):
    """Users of an organisation, or members of one group today."""

    organisation: str
    group: str | None
    users: list[UserOut]


class UserDetail(Open):
    """A user with memberships, groups managed, Afas profiles and services usable today. Each
    membership says whether it is ``open`` today and whether its dates may still change
    (``editable``: it has not ended)."""

    user: dict[str, Any]
    revision: int


class MembershipWritten(Written):
    """A membership as written."""

    membership: dict[str, Any]


class GroupWritten(Written):
    """A group as written."""

    group: dict[str, Any]


class GroupItem(Open):
    """A group (R-GRP-5), and what its state still allows, whoever acts (who may is the
    engine's admin check, R-ADM-7): ``editable`` and ``closable`` are false for a system group
    (R-GRP-3) and for a group whose closing day is reached (R-GRP-2)."""

    code: str
    organisation: str
    label: str
    parent: str | None
    system: bool
    opens_on: str
    closes_on: str | None
    open: bool
    editable: bool
    closable: bool


class GroupList(Open):
    """Groups of an organisation, each with its manager's login."""

    organisation: str
    groups: list[GroupItem]


class GroupDetail(Open):
    """A group: manager, parent, convention, sub-groups, roles, members."""

    group: GroupItem


class GroupRoles(Open):
    """A group's roles, and the roles it could be given (R-GRP-4)."""

    group: str
    roles: list[dict[str, Any]]
    assignable: list[dict[str, Any]]


class RoleWritten(Written):
    """A role assigned or removed; ``groups`` lists every group it changed."""

    groups: list[str]


class ManagerWritten(Written):
    """A group's manager named or replaced."""

    group: str
    manager: str
    previous: str | None


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
