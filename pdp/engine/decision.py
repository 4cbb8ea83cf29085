"""Decisions and their stable reason codes (R-DEC-3). Named tuples: built on every check."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import NamedTuple


class Reason(StrEnum):
    """Why a check was allowed or denied. The values are a public, stable API (R-DEC-3)."""

    ALLOWED = "ALLOWED"
    UNKNOWN_USER = "UNKNOWN_USER"
    USER_NOT_YET_OPEN = "USER_NOT_YET_OPEN"
    USER_CLOSED = "USER_CLOSED"
    NO_ORGANISATION = "NO_ORGANISATION"
    NO_SUBSCRIPTION = "NO_SUBSCRIPTION"
    CAF_NOT_SUBSCRIBED = "CAF_NOT_SUBSCRIBED"
    NO_MEMBERSHIP = "NO_MEMBERSHIP"
    GROUP_CLOSED = "GROUP_CLOSED"
    ROLE_NOT_GRANTED = "ROLE_NOT_GRANTED"
    FEATURE_NOT_GRANTED = "FEATURE_NOT_GRANTED"
    ENGINE_ERROR = "ENGINE_ERROR"
    POLICY_UNAVAILABLE = "POLICY_UNAVAILABLE"


MESSAGES: dict[Reason, str] = {
    Reason.ALLOWED: "Accès autorisé.",
    Reason.UNKNOWN_USER: "Utilisateur inconnu.",
    Reason.USER_NOT_YET_OPEN: "Le compte de l'utilisateur n'est pas encore ouvert à cette date.",
    Reason.USER_CLOSED: "Le compte de l'utilisateur est clôturé à cette date.",
    Reason.NO_ORGANISATION: "Ce compte n'est rattaché à aucun organisme partenaire.",
    Reason.NO_SUBSCRIPTION: (
        "L'organisme n'a pas de bulletin d'adhésion ouvert pour ce service à cette date."
    ),
    Reason.CAF_NOT_SUBSCRIBED: (
        "L'organisme n'a pas de convention ouverte avec cette Caf pour ce service à cette date."
    ),
    Reason.NO_MEMBERSHIP: "L'utilisateur n'appartient à aucun groupe ouvert à cette date.",
    Reason.GROUP_CLOSED: (
        "Le groupe qui porte ce rôle, ou l'un de ses groupes parents, est clôturé à cette date."
    ),
    Reason.ROLE_NOT_GRANTED: (
        "Aucun groupe de l'utilisateur ne porte ce rôle pour ce service à cette date."
    ),
    Reason.FEATURE_NOT_GRANTED: (
        "Aucun profil de l'utilisateur n'ouvre cette fonctionnalité du service à cette date."
    ),
    Reason.ENGINE_ERROR: "Erreur interne lors de la décision : accès refusé par précaution.",
    Reason.POLICY_UNAVAILABLE: (
        "Les habilitations n'ont pas pu être mises à jour depuis trop longtemps : "
        "accès refusé par précaution."
    ),
}


class Grant(NamedTuple):
    """One path that grants access: user → group → (service, role), or an Afas profile."""

    service: str
    role: str
    group: str | None = None
    source: str = "group"


class Query(NamedTuple):
    """May ``user`` use ``service`` (with ``role``, or opening ``feature``, for ``caf``) on
    ``day``?"""

    user: str
    service: str
    role: str | None = None
    caf: str | None = None
    day: dt.date | None = None
    feature: str | None = None
    allocataire: str | None = None  # what the check is about: logged, never used to decide


class Decision(NamedTuple):
    """The engine's answer; ``allowed`` is True only with reason ALLOWED."""

    allowed: bool
    reason: Reason
    grants: tuple[Grant, ...] = ()
    revision: int = 0
    day: dt.date | None = None

    @property
    def message(self) -> str:
        """The French message shown to the portal's users."""
        return MESSAGES[self.reason]
