"""Demo data that tells the guides' stories; dates are relative to the day it is loaded.

- ``mairie-montreuil``: a town hall's social service (CCAS) using Cdap, with a group "CCAS" and
  sub-groups carrying T1/T18; a partner admin in no group (R-ADM-2), a closed user, a user not
  yet open, a closed sub-group, an Adonis subscription that has expired.
- ``habitat-93``: a social landlord with Espace Bailleur's system groups, one per housing type.
- ``sip-lyon``: a tax office with Dgfip's recouvrement and enquete journeys.
- ``asso-entraide``: an association with the recommended Afas groups Déclarer/Habiliter and
  per-user Afas profiles.
- ``ccas-grand-paris``: a partner with conventions with two Cafs (751 and 931), Cdap under both.
- ``op.caf751``: an operator of the Caf.
"""

from __future__ import annotations

import datetime as dt
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
    Organisation,
    PartnerAdmin,
    Subscription,
    User,
)
from pdp.engine.actions import Action
from pdp.records.audit_trail import AuditChain, AuditEvent, now
from pdp.records.policy_write import begin, finish

DEMO_MARKER = "mairie-montreuil"
DEMO_ACTOR = "pdp-demo-load"


class _Builder:
    def __init__(self, session: Session, today: dt.date) -> None:
        self.s = session
        self.today = today
        self.long_ago = today - dt.timedelta(days=730)
        self.cafs: dict[str, Caf] = {}
        # What the audit trail records of the load: (action, target, organisation, after,
        # related); numbered with the load's revision at the end.
        self.changes: list[tuple[Action, str, str | None, dict[str, Any], str | None]] = []
        self.org_codes: dict[int, str] = {}

    def note(
        self,
        action: Action,
        target: str,
        org_id: int | None,
        after: dict[str, Any],
        related: str | None = None,
    ) -> None:
        org = self.org_codes.get(org_id) if org_id is not None else None
        self.changes.append((action, target, org, after, related))

    def days(self, n: int) -> dt.date:
        return self.today + dt.timedelta(days=n)

    def caf(self, code: str, name: str) -> Caf:
        caf = Caf(code=code, name=name)
        self.s.add(caf)
        self.cafs[code] = caf
        return caf

    def org(self, code: str, name: str, kind: str) -> Organisation:
        org = Organisation(code=code, name=name, kind=kind, opens_on=self.long_ago)
        self.s.add(org)
        self.s.flush()
        self.org_codes[org.id] = code
        self.note(Action.ORGANISATION_CREATE, f"organisation:{code}", org.id, {"name": name})
        return org

    def convention(
        self, org: Organisation, caf: str, services: dict[str, dt.date | None]
    ) -> Convention:
        conv = Convention(
            organisation_id=org.id,
            caf_id=self.cafs[caf].id,
            reference=f"CONV-{org.code}-{caf}",
            opens_on=self.long_ago,
        )
        self.s.add(conv)
        self.s.flush()
        for service, closes_on in services.items():
            self.s.add(
                Subscription(
                    convention_id=conv.id,
                    service=service,
                    opens_on=self.long_ago,
                    closes_on=closes_on,
                )
            )
        self.note(
            Action.CONTRACT_MANAGE,
            f"organisation:{org.code}",
            org.id,
            {"convention": conv.reference, "caf": caf, "services": sorted(services)},
        )
        return conv

    def user(
        self,
        org: Organisation | None,
        login: str,
        first: str,
        last: str,
        *,
        opens_on: dt.date | None = None,
        closes_on: dt.date | None = None,
        operator: bool = False,
    ) -> User:
        user = User(
            login=login,
            organisation_id=org.id if org else None,
            first_name=first,
            last_name=last,
            email=f"{login}@example.fr",
            is_operator=operator,
            opens_on=opens_on or self.long_ago,
            closes_on=closes_on,
        )
        self.s.add(user)
        self.s.flush()
        self.note(Action.USER_CREATE, f"user:{login}", user.organisation_id, {"login": login})
        return user

    def group(
        self,
        org: Organisation,
        conv: Convention,
        code: str,
        label: str,
        manager: User,
        roles: list[tuple[str, str]],
        *,
        parent: Group | None = None,
        closes_on: dt.date | None = None,
        system: bool = False,
    ) -> Group:
        group = Group(
            organisation_id=org.id,
            convention_id=conv.id,
            parent_id=parent.id if parent else None,
            code=code,
            label=label,
            is_system=system,
            opens_on=self.long_ago,
            closes_on=closes_on,
        )
        self.s.add(group)
        self.s.flush()
        self.s.add(GroupManager(group_id=group.id, user_id=manager.id, opens_on=self.long_ago))
        target = f"group:{org.code}/{code}"
        self.note(
            Action.GROUP_CREATE_SUB if parent else Action.GROUP_CREATE_TOP,
            target,
            org.id,
            {"code": code, "manager": manager.login},
            f"user:{manager.login}",
        )
        for service, role in roles:
            self.s.add(
                GroupRole(group_id=group.id, service=service, role=role, opens_on=self.long_ago)
            )
            self.note(
                Action.GROUP_ROLES_EDIT,
                target,
                org.id,
                {"service": service, "role": role, "opens_on": self.long_ago.isoformat()},
            )
        return group

    def member(self, user: User, group: Group, closes_on: dt.date | None = None) -> None:
        self.s.add(
            Membership(
                user_id=user.id, group_id=group.id, opens_on=self.long_ago, closes_on=closes_on
            )
        )
        org = self.org_codes[group.organisation_id]
        self.note(
            Action.GROUP_MEMBERS_EDIT,
            f"user:{user.login}",
            group.organisation_id,
            {"user": user.login, "group": group.code, "opens_on": self.long_ago.isoformat()},
            f"group:{org}/{group.code}",
        )

    def admin(self, org: Organisation, user: User) -> None:
        self.s.add(PartnerAdmin(organisation_id=org.id, user_id=user.id, opens_on=self.long_ago))
        self.note(Action.ADMINS_DESIGNATE, f"user:{user.login}", org.id, {"admin": user.login})

    def profile(self, user: User, profile: str) -> None:
        self.s.add(AfasProfile(user_id=user.id, profile=profile, opens_on=self.long_ago))
        self.note(
            Action.AFAS_PROFILES_EDIT,
            f"user:{user.login}",
            user.organisation_id,
            {"user": user.login, "profile": profile},
        )


def demo_loaded(session: Session) -> bool:
    """Return whether the demo organisations are already in the store."""
    return (
        session.execute(select(Organisation.id).where(Organisation.code == DEMO_MARKER)).first()
        is not None
    )


def load_demo(session: Session, today: dt.date, chain: AuditChain | None = None) -> int:
    """Insert the demo data in the session's transaction, with its audit records (actor
    ``pdp-demo-load``); return the new revision."""
    write = begin(session)  # a policy write, like every other (pdp.records.policy_write)
    b = _Builder(session, today)
    for code, name in (
        ("751", "Caf de Paris"),
        ("931", "Caf de la Seine-Saint-Denis"),
        ("691", "Caf du Rhône"),
        ("131", "Caf des Bouches-du-Rhône"),
    ):
        b.caf(code, name)
    session.flush()
    b.user(None, "op.caf751", "Odile", "Perrin", operator=True)

    # A town hall's social service using Cdap (fiches 7-12, "habiliter un utilisateur").
    mairie = b.org("mairie-montreuil", "Mairie de Montreuil - CCAS", "mairie")
    conv = b.convention(mairie, "931", {"cdap": None, "adonis": b.days(-10)})
    alice = b.user(mairie, "alice.martin", "Alice", "Martin")  # partner admin, in no group
    bruno = b.user(mairie, "bruno.petit", "Bruno", "Petit")  # manager of CCAS
    chloe = b.user(mairie, "chloe.roux", "Chloé", "Roux")
    david = b.user(mairie, "david.leroy", "David", "Leroy", closes_on=b.days(-30))
    emma = b.user(mairie, "emma.garnier", "Emma", "Garnier")
    fabien = b.user(mairie, "fabien.morel", "Fabien", "Morel", opens_on=b.days(30))
    b.admin(mairie, alice)
    ccas = b.group(
        mairie,
        conv,
        "CCAS",
        "Service social",
        bruno,
        [("cdap", "T1"), ("cdap", "T18"), ("adonis", "acces")],
    )
    accueil = b.group(mairie, conv, "CCAS-ACCUEIL", "Accueil", bruno, [("cdap", "T1")], parent=ccas)
    instruction = b.group(
        mairie,
        conv,
        "CCAS-INSTRUCTION",
        "Instruction des dossiers",
        bruno,
        [("cdap", "T1"), ("cdap", "T18")],
        parent=ccas,
    )
    archives = b.group(
        mairie,
        conv,
        "CCAS-ARCHIVES",
        "Archives (fermé)",
        bruno,
        [("cdap", "T18")],
        parent=ccas,
        closes_on=b.days(-5),
    )
    b.member(bruno, instruction)
    b.member(bruno, ccas)
    b.member(chloe, accueil)
    b.member(david, instruction)
    b.member(emma, archives)
    b.member(fabien, accueil)

    # A social landlord with Espace Bailleur's system groups (R-GRP-3).
    bailleur = b.org("habitat-93", "Habitat Social 93", "bailleur")
    conv_b = b.convention(bailleur, "931", {"espace_bailleur": None})
    gilles = b.user(bailleur, "gilles.bernard", "Gilles", "Bernard")
    helene = b.user(bailleur, "helene.fabre", "Hélène", "Fabre")
    b.admin(bailleur, gilles)
    prive = b.group(
        bailleur,
        conv_b,
        "EB-PARC-PRIVE",
        "Espace Bailleur - parc privé",
        gilles,
        [("espace_bailleur", "parc_prive")],
        system=True,
    )
    b.group(
        bailleur,
        conv_b,
        "EB-PARC-CONVENTIONNE",
        "Espace Bailleur - parc conventionné",
        gilles,
        [("espace_bailleur", "parc_conventionne")],
        system=True,
    )
    b.member(helene, prive)

    # A tax office with Dgfip's two journeys.
    sip = b.org("sip-lyon", "Service des impôts des particuliers de Lyon", "dgfip")
    conv_s = b.convention(sip, "691", {"dgfip": None})
    ines = b.user(sip, "ines.moreau", "Inès", "Moreau")
    jules = b.user(sip, "jules.lambert", "Jules", "Lambert")
    b.admin(sip, ines)
    recouvrement = b.group(
        sip, conv_s, "DGFIP-RECOUVREMENT", "Recouvrement", ines, [("dgfip", "recouvrement")]
    )
    enquete = b.group(sip, conv_s, "DGFIP-ENQUETE", "Enquête", ines, [("dgfip", "enquete")])
    b.member(ines, recouvrement)
    b.member(jules, enquete)

    # An association using Afas (R-AFAS-1): recommended groups and per-user profiles.
    asso = b.org("asso-entraide", "Association Entraide", "association")
    conv_a = b.convention(asso, "751", {"afas": None})
    karim = b.user(asso, "karim.diallo", "Karim", "Diallo")
    lea = b.user(asso, "lea.fontaine", "Léa", "Fontaine")
    marc = b.user(asso, "marc.chevalier", "Marc", "Chevalier")
    b.admin(asso, karim)
    declarer = b.group(
        asso, conv_a, "AFAS-DECLARER", "AFAS – Déclarer", karim, [("afas", "declarer")]
    )
    habiliter = b.group(
        asso, conv_a, "AFAS-HABILITER", "AFAS – Habiliter", karim, [("afas", "habiliter")]
    )
    b.member(karim, habiliter)
    b.member(lea, declarer)
    b.profile(lea, "declaration")
    b.profile(marc, "consultation")

    # A partner with conventions with two Cafs (R-CON-3).
    gp = b.org("ccas-grand-paris", "CCAS du Grand Paris", "ccas")
    conv_751 = b.convention(gp, "751", {"cdap": None})
    b.convention(gp, "931", {"cdap": None})
    nadia = b.user(gp, "nadia.benali", "Nadia", "Benali")
    b.admin(gp, nadia)
    consult = b.group(
        gp, conv_751, "CONSULTATION", "Consultation des dossiers", nadia, [("cdap", "T1")]
    )
    b.member(nadia, consult)

    session.flush()
    ts = now()
    for action, target, org, after, related in b.changes:
        write.record(
            AuditEvent(DEMO_ACTOR, action, target, org, None, after, write.revision, ts, related)
        )
    finish(write, chain or AuditChain(), "demo load")
    return write.revision
