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


class OrganisationWritten(Written):
    """An organisation as registered (R-CON-4)."""

    organisation: dict[str, Any]


class OrganisationItem(Open):
    """A registered organisation (R-CON-4), and whether it is ``open`` today."""

    code: str
    name: str
    kind: str | None
    opens_on: str
    closes_on: str | None
    open: bool


class OrganisationList(Open):
    """Every registered organisation by code (operators)."""

    organisations: list[OrganisationItem]


class ContractOut(Open):
    """An organisation's contract: conventions with their subscriptions, partner admins. Each
    designation says whether it is ``open`` today and whether it is ``current`` (it has not
    ended: it may still end)."""

    organisation: dict[str, Any]
    conventions: list[dict[str, Any]]
    admins: list[dict[str, Any]]


class ConventionWritten(Written):
    """A convention as written (R-CON-1)."""

    convention: dict[str, Any]


class SubscriptionWritten(Written):
    """A subscription (bulletin d'adhésion) as written (R-CON-1, R-CON-2)."""

    subscription: dict[str, Any]


class AdminWritten(Written):
    """A partner admin designation as written (R-ADM-1); ``created_user`` when the user was
    created in the same transaction."""

    admin: dict[str, Any]
    created_user: dict[str, Any] | None = None


class AfasProfiles(Open):
    """A user's Afas profiles that have not ended (R-AFAS-1)."""

    organisation: str
    user: str
    profiles: list[dict[str, Any]]


class AfasProfileWritten(Written):
    """An Afas profile as written (R-AFAS-1)."""

    profile: dict[str, Any]
