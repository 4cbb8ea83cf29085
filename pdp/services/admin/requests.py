"""The administration API's request bodies (pydantic): plain data for the verbs, and the
OpenAPI schemas. Unknown fields are refused; dates are YYYY-MM-DD calendar days."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from pdp.core.fields import CafCode, Code, Day, Login, Name, NewLogin, Strict, text
from pdp.core.text import EMAIL_PATTERN

Label = Annotated[str, text(200, 1)]
Text = Annotated[str, text(120)]
Email = Annotated[str, Field(max_length=254, pattern=EMAIL_PATTERN)]


class NewUser(Strict):
    """A user to create (fiche 1): no rights yet (R-USR-2). Opening date defaults to today."""

    login: NewLogin
    first_name: Text
    last_name: Text
    email: Email
    opens_on: Day | None = None
    closes_on: Day | None = None


class UserEdit(Strict):
    """Fields to change (fiche 2); a closing date closes the user (fiche 3, R-USR-4)."""

    first_name: Text | None = None
    last_name: Text | None = None
    email: Email | None = None
    opens_on: Day | None = None
    closes_on: Day | None = None


class UserRef(Strict):
    """An existing user by login, or a new one created in the same transaction."""

    login: Login | None = None
    new_user: NewUser | None = None


class MembershipNew(Strict):
    """Attach the user to a group (fiche 4); the start defaults to today (R-MEM-1)."""

    group: Code
    opens_on: Day | None = None
    closes_on: Day | None = None


class MembershipEdit(Strict):
    """Change a membership's dates; a closing date detaches (fiche 6, R-MEM-2)."""

    opens_on: Day | None = None
    closes_on: Day | None = None


class GroupNew(Strict):
    """A group (fiche 7): top-level without ``parent`` (admins), a sub-group with it. The
    manager is required (R-ADM-3): an existing login or a user created on the fly."""

    code: Code
    label: Label
    convention: Code | None = Field(
        default=None, description="Convention reference; a sub-group takes its parent's."
    )
    parent: Code | None = None
    manager: UserRef
    opens_on: Day | None = None
    closes_on: Day | None = None


class GroupEdit(Strict):
    """Fields of a group to change (fiche 10); not on system groups (R-GRP-3)."""

    label: Label | None = None
    opens_on: Day | None = None
    closes_on: Day | None = None


class RoleRef(Strict):
    """A (service, role) pair of the catalogue (fiche 12)."""

    service: Name
    role: Name


class AdminCheckRequest(Strict):
    """May ``actor`` do ``action`` on ``target``? (R-ADM-7)"""

    actor: Login
    action: Annotated[str, text(80, 1)]
    target: Annotated[str, text(300, 1)]


class OrganisationNew(Strict):
    """A partner organisation registered by an operator (R-CON-4)."""

    code: Code
    name: Label
    kind: Annotated[str, text(40, 1)] = "other"
    opens_on: Day | None = None


class ConventionNew(Strict):
    """A convention with one Caf (R-CON-1)."""

    caf: CafCode
    reference: Code
    opens_on: Day | None = None
    closes_on: Day | None = None


class DatesEdit(Strict):
    """New dates for a dated record (a convention, a subscription, a designation)."""

    opens_on: Day | None = None
    closes_on: Day | None = None


class SubscriptionNew(Strict):
    """A bulletin d'adhésion: opens one service under the convention (R-CON-1)."""

    service: Name
    opens_on: Day | None = None
    closes_on: Day | None = None


class AfasProfileNew(Strict):
    """An Afas profile for a user (R-AFAS-1)."""

    profile: Name
    opens_on: Day | None = None
    closes_on: Day | None = None


class ManagerSet(Strict):
    """Name a group's manager (fiches 14 and 16). ``replaces`` must name the current manager
    when there is one: of two requests racing to replace the same manager, the second is
    refused (409 MANAGER_CHANGED) instead of silently overwriting the first (R-ADM-3)."""

    login: Login | None = None
    new_user: NewUser | None = None
    replaces: Login | None = Field(
        default=None,
        description=(
            "The current manager's login. Required whenever the group has a manager, which "
            "every open group has (R-ADM-3): without it, 409 MANAGER_CHANGED with "
            '``details.missing = "replaces"``; naming someone else, 409 MANAGER_CHANGED too.'
        ),
    )


class CafNew(Strict):
    """A Caf of the network, registered by an operator or the command line (R-CON-4); it opens
    today unless given (an earlier day is allowed: a Caf's days decide nothing by themselves)."""

    code: CafCode
    name: Label
    opens_on: Day | None = None


class CafEdit(Strict):
    """A Caf's new name, or its closing day (no open convention may outlive it)."""

    name: Label | None = None
    closes_on: Day | None = None


class OperatorNew(Strict):
    """An operator: a Caf-side account acting across every organisation (R-CON-4)."""

    login: NewLogin
    first_name: Text
    last_name: Text
    email: Email
    opens_on: Day | None = None


class OperatorEdit(Strict):
    """An operator's new details, or their closing day (R-USR-4)."""

    first_name: Text | None = None
    last_name: Text | None = None
    email: Email | None = None
    closes_on: Day | None = None


class DirectoryQuery(BaseModel):
    """A page of the organisation's users (R-USR-6): members of ``group`` today, matching ``q``
    (in the login, the names or the email, case ignored), ``limit`` of them after ``cursor``
    (the previous page's ``next_cursor``), by login."""

    model_config = ConfigDict(extra="forbid", strict=False)
    group: Code | None = None
    q: Annotated[str, text(120, 1)] | None = None
    limit: int = Field(default=100, ge=1, description="At most PDP_PAGE_MAX (default 1,000).")
    cursor: Annotated[str, text(400)] | None = None


class GroupsQuery(BaseModel):
    """A page of the organisation's groups (R-GRP-5): matching ``q`` (in the code or the label,
    case ignored), ``limit`` of them after ``cursor``, by code."""

    model_config = ConfigDict(extra="forbid", strict=False)
    q: Annotated[str, text(120, 1)] | None = None
    limit: int = Field(default=100, ge=1, description="At most PDP_PAGE_MAX (default 1,000).")
    cursor: Annotated[str, text(400)] | None = None


class UserImportRequest(Strict):
    """A CSV of users and their groups (``pdp.services.admin.user_imports``): previewed unless
    ``apply``."""

    csv: str = Field(max_length=2_000_000, description="The file's text (UTF-8).")
    apply: bool = False
