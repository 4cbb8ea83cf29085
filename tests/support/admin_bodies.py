"""What the administration API's tests write and read back: days relative to today, the body
of a user to create or of a role, the logins of a listing, and one step of the demo many rule
tests start from.

Demo reminders: mairie-montreuil's partner admin is alice.martin (in no group); bruno.petit
manages CCAS and its sub-groups CCAS-ACCUEIL, CCAS-INSTRUCTION, CCAS-ARCHIVES (closed), and is a
member of CCAS and CCAS-INSTRUCTION; chloe.roux is a member of CCAS-ACCUEIL; david.leroy is
closed, fabien.morel not yet open. habitat-93 has the system groups EB-PARC-*; asso-entraide's
admin karim.diallo manages AFAS-DECLARER and AFAS-HABILITER.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from support.actors import Api
from support.constants import MAIRIE


def day(today: dt.date, n: int = 0) -> str:
    """ISO day ``n`` days from ``today``."""
    return (today + dt.timedelta(days=n)).isoformat()


def new_user(login: str, first: str = "Zoé", last: str = "Durand") -> dict[str, str]:
    """A user to create: the body of fiche 1's form."""
    return {"login": login, "first_name": first, "last_name": last, "email": f"{login}@x.fr"}


def role(service: str, name: str) -> dict[str, str]:
    """A role body."""
    return {"service": service, "role": name}


def logins(users: list[dict[str, Any]]) -> list[str]:
    """The logins of a user listing."""
    return sorted(u["login"] for u in users)


def make_chloe_manager_of_accueil(api: Api) -> None:
    """alice names chloe.roux manager of CCAS-ACCUEIL (a sub-group of CCAS)."""
    api.write(
        "alice.martin",
        "PUT",
        f"{MAIRIE}/groups/CCAS-ACCUEIL/manager",
        {"login": "chloe.roux", "replaces": "bruno.petit"},
    )
