"""The administrative actions (R-ADM-5): one member per action of ``policies/admin_policy.csv``.

The code names actions by member, never by string; the table of rights says who may do each.
``pdp.engine.rules.load_rights`` checks at start-up that the table and this enumeration name the
same actions, so an action cannot be added to one and forgotten in the other. The values are the
table's strings: audit records, decision-log entries, error details and the public
``POST /v1/admin/check`` keep that text.
"""

from __future__ import annotations

from enum import StrEnum

from pdp.core.errors import BadRequest


class Action(StrEnum):
    """An administrative action; its value is the action's name in the table of rights."""

    # The Caf network: its Cafs and its operators (R-CON-4)
    CAF_MANAGE = "caf.manage"
    OPERATOR_MANAGE = "operator.manage"
    # Contracts with the Caf (R-CON-4)
    ORGANISATION_CREATE = "organisation.create"
    ORGANISATION_LIST = "organisation.list"
    CONTRACT_MANAGE = "contract.manage"
    CONTRACT_READ = "contract.read"
    ADMINS_DESIGNATE = "admins.designate"
    # The organisation's users and groups
    DIRECTORY_READ = "directory.read"
    USER_CREATE = "user.create"
    USER_EDIT = "user.edit"
    USER_CLOSE = "user.close"
    GROUP_CREATE_TOP = "group.create_top"
    GROUP_CREATE_SUB = "group.create_sub"
    GROUP_ROLES_EDIT = "group.roles.edit"
    GROUP_MEMBERS_EDIT = "group.members.edit"
    GROUP_EDIT = "group.edit"
    GROUP_CLOSE = "group.close"
    GROUP_MANAGER_SET = "group.manager.set"
    # Afas profiles (R-AFAS-2)
    AFAS_PROFILES_EDIT = "afas.profiles.edit"
    AFAS_PROFILES_READ = "afas.profiles.read"
    # The decision log and the audit trail
    LOG_READ = "log.read"
    # The organisation's computed rights as a document: who may use what (R-ADM-8)
    ACCESS_READ = "access.read"
    # Access reviews (revue des habilitations, R-CNIL-20..29): open and close a campaign, keep
    # or remove a reviewed membership, remove what is left unreviewed at the closing
    REVIEW_OPEN = "review.open"
    REVIEW_DECIDE = "review.decide"
    REVIEW_CLOSE = "review.close"


def parse_action(text: str) -> Action:
    """The action a caller names; raise BadRequest (UNKNOWN_ACTION) for any other text."""
    try:
        return Action(text)
    except ValueError:
        raise BadRequest(f"Action inconnue : {text!r}.", code="UNKNOWN_ACTION") from None
