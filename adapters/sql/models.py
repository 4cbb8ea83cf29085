"""The domain store's tables (SQLAlchemy 2).

Every grant-bearing record carries ``opens_on`` and an optional ``closes_on`` (R-TIME-1): it is
open on day d when opens_on ≤ d < closes_on. Nothing is ever deleted (R-TIME-2): closing sets a
date, so any past day can be decided again. ``policy_changes`` numbers every write: its highest
``revision`` is the policy revision, and its ``organisation_id`` says which domain to reload
(NULL: every domain).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


CAF_OPEN_SINCE = dt.date(2000, 1, 1)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (for migrations)."""

    metadata = MetaData(naming_convention=NAMING)


class Dated:
    """Opening and closing days (R-TIME-1)."""

    opens_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    closes_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)


class Caf(Base, Dated):
    """A Caf of the network, e.g. code "751" (Paris), open from ``opens_on`` (R-TIME-1)."""

    __tablename__ = "cafs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(10), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # A Caf registered without a day (before migration 0005, or by a loader) is open from the
    # earliest day the store knows.
    opens_on: Mapped[dt.date] = mapped_column(
        Date, nullable=False, default=CAF_OPEN_SINCE, server_default=CAF_OPEN_SINCE.isoformat()
    )


class Organisation(Base, Dated):
    """A partner organisation: a Casbin domain."""

    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False, default="other")


class Convention(Base, Dated):
    """The contract between an organisation and one Caf (R-CON-1)."""

    __tablename__ = "conventions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    caf_id: Mapped[int] = mapped_column(ForeignKey("cafs.id"), nullable=False)
    reference: Mapped[str] = mapped_column(String(64), nullable=False)


class Subscription(Base, Dated):
    """A bulletin d'adhésion: opens one service under one convention (R-CON-1, R-CON-2)."""

    __tablename__ = "subscriptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    convention_id: Mapped[int] = mapped_column(ForeignKey("conventions.id"), index=True)
    service: Mapped[str] = mapped_column(String(40), nullable=False)


class User(Base, Dated):
    """A person of one organisation (R-USR-1), or a Caf-side operator (no organisation)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(120), unique=True, nullable=False)
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id"), index=True, nullable=True
    )
    first_name: Mapped[str] = mapped_column(String(120), nullable=False, default="")
    last_name: Mapped[str] = mapped_column(String(120), nullable=False, default="")
    email: Mapped[str] = mapped_column(String(254), nullable=False, default="")
    is_operator: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class Group(Base, Dated):
    """A group of users, possibly a sub-group (R-GRP-1); groups form a tree."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("organisation_id", "code", name="uq_groups_org_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    convention_id: Mapped[int] = mapped_column(ForeignKey("conventions.id"), nullable=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id"), index=True)
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    label: Mapped[str] = mapped_column(String(200), nullable=False)
    is_system: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class Membership(Base, Dated):
    """A user in a group, with dates (R-MEM-1)."""

    __tablename__ = "memberships"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), index=True)


class GroupRole(Base, Dated):
    """A (service, role) carried by a group (R-GRP-4)."""

    __tablename__ = "group_roles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), index=True)
    service: Mapped[str] = mapped_column(String(40), nullable=False)
    role: Mapped[str] = mapped_column(String(40), nullable=False)


class PartnerAdmin(Base, Dated):
    """A partner admin designation (R-ADM-1: at most two open per organisation)."""

    __tablename__ = "partner_admins"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)


class GroupManager(Base, Dated):
    """The manager (responsable habilitations) of a group (R-ADM-3: one open at a time)."""

    __tablename__ = "group_managers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)


class AfasProfile(Base, Dated):
    """A per-user Afas profile (R-AFAS-1)."""

    __tablename__ = "afas_profiles"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    profile: Mapped[str] = mapped_column(String(40), nullable=False)


class PolicyRevision(Base):
    """A single row holding the latest revision. Writers bump it with an UPDATE, which holds a
    row lock until commit: revisions therefore commit in order, and a reader that has seen
    revision n has seen every change numbered up to n."""

    __tablename__ = "policy_revision"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # The head of the audit chain (pdp.records.audit_trail), moved in the same transaction as each
    # write:
    # a record deleted from the end of the chain shows as a head that no record matches.
    audit_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    audit_hash: Mapped[str] = mapped_column(String(64), nullable=False, default="0" * 64)


class PolicyChange(Base):
    """One committed write: its number is the policy revision it produced. ``scope`` None: the
    whole organisation (or every one, with no organisation); "user": the user ``subject_id``
    (their row, memberships, Afas profiles); "group": the group ``subject_id`` (its row, roles,
    managers); "structure": the organisation's own rows (itself,
    subscriptions, partner admins, groups, roles, managers), not its users (migration 0011)."""

    __tablename__ = "policy_changes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id"), nullable=True
    )
    reason: Mapped[str] = mapped_column(String(80), nullable=False)
    changed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    scope: Mapped[str | None] = mapped_column(String(16), nullable=True)
    subject_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


Index("ix_group_roles_group_service", GroupRole.group_id, GroupRole.service)


class AuditRecord(Base):
    """One administrative change, written in the transaction of the change
    (pdp.records.audit_trail).

    ``seq`` numbers the records without gaps (1, 2, …) and ``hash`` chains each to the one
    before (``prev_hash``): an edited, deleted or inserted record breaks the chain. ``before``
    and ``after`` are canonical JSON text, hashed exactly as stored.
    """

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts_us: Mapped[int] = mapped_column(BigInteger, nullable=False)
    actor: Mapped[str] = mapped_column(String(120), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str] = mapped_column(String(200), nullable=False)
    related: Mapped[str | None] = mapped_column(String(200), nullable=True)
    organisation: Mapped[str | None] = mapped_column(String(64), nullable=True)
    before: Mapped[str | None] = mapped_column(Text, nullable=True)
    after: Mapped[str | None] = mapped_column(Text, nullable=True)
    revision: Mapped[int] = mapped_column(BigInteger, nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


Index("ix_audit_log_organisation_seq", AuditRecord.organisation, AuditRecord.seq)
Index("ix_audit_log_target_seq", AuditRecord.target, AuditRecord.seq)
Index("ix_audit_log_related_seq", AuditRecord.related, AuditRecord.seq)
Index("ix_audit_log_actor_seq", AuditRecord.actor, AuditRecord.seq)


class DecisionRecord(Base):
    """One logged decision, shipped from a worker's write-ahead file (pdp.records.decision_log).

    The columns are what auditors filter on; ``entry`` is the whole entry as logged (grant
    path, evaluation time, administrative action and target, …), as JSON text.
    """

    __tablename__ = "decision_log"
    decision_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # In the key: PostgreSQL partitions the table by month of ts_us (migration 0008,
    # pdp.adapters.sql.partitions), and a partitioned table's key holds its partition column.
    ts_us: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    organisation: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user: Mapped[str | None] = mapped_column(String(200), nullable=True)
    service: Mapped[str | None] = mapped_column(String(40), nullable=True)
    allowed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str] = mapped_column(String(40), nullable=False)
    revision: Mapped[int] = mapped_column(BigInteger, nullable=False)
    entry: Mapped[str] = mapped_column(Text, nullable=False)
    # The pseudonym of the allocataire number a check was about (R-DEC-1 never reads it).
    allocataire: Mapped[str | None] = mapped_column(String(32), nullable=True)


Index("ix_decision_log_organisation_ts", DecisionRecord.organisation, DecisionRecord.ts_us)
Index("ix_decision_log_allocataire_ts", DecisionRecord.allocataire, DecisionRecord.ts_us)
Index("ix_decision_log_user_ts", DecisionRecord.user, DecisionRecord.ts_us)


class LastUse(Base):
    """The last day an allowed check was made for a (user, service, role) (R-CNIL-1).

    Kept up to date by the decision log's shipper, in the transaction that inserts the
    decisions (``pdp.records.last_use``); its own table, so pruning the decision log keeps it.
    ``login`` is the user as the decision log holds it (a pseudonym when ``PDP_LOG_MASK`` masks
    it).
    """

    __tablename__ = "last_use"
    login: Mapped[str] = mapped_column(String(200), primary_key=True)
    service: Mapped[str] = mapped_column(String(40), primary_key=True)
    role: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, nullable=False)


class ApiClientRecord(Base):
    """One API key of a front-end (a policy enforcement point): ``pdp clients add``.

    Only the SHA-256 of the key is stored (``key_hash``); ``key_id`` is the key's public part,
    by which it is looked up. ``services`` (comma-separated, sorted) are the services the key may
    ask about. A revoked key keeps its row (``revoked_at``), for the audit trail. A key may
    expire (``expires_at``); ``last_used_on`` is the day it was last used.
    """

    __tablename__ = "api_clients"
    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    services: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Refused from this instant on (None: no expiry). R-OPS-2.
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The last day (Europe/Paris) a request carried the key, written at most once a day per
    # worker, off the request's own work (pdp.services.api_keys.ClientRegistry). R-OPS-3.
    last_used_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)


class ConsoleSessionRecord(Base):
    """One session of the administration console (``pdp.services.sessions``).

    The browser's cookie carries a random session id; only its SHA-256 is stored (``id_hash``),
    so a copy of the table signs nobody in. A session is live while ``ended_at`` is unset and
    it is within its idle and absolute lifetimes; sign-out, a refused user, a new person behind
    the proxy or an expired lifetime set ``ended_at`` and ``end_reason``.
    """

    __tablename__ = "console_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    login: Mapped[str] = mapped_column(String(120), nullable=False)
    mode: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, index=True
    )
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)


class ReviewCampaign(Base):
    """An access review (revue des habilitations, R-CNIL-20): opened by ``opened_by`` for the
    organisations listed (a JSON list of codes), due on ``due_on``; ``remove_unreviewed`` says
    whether the closing removes what is left unreviewed (R-CNIL-26)."""

    __tablename__ = "review_campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    opened_by: Mapped[str] = mapped_column(String(120), nullable=False)
    opened_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    due_on: Mapped[dt.date] = mapped_column(Date, nullable=False)
    remove_unreviewed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    organisations: Mapped[str] = mapped_column(Text, nullable=False)
    closed_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(120), nullable=True)


class ReviewItem(Base):
    """One open membership under review (R-CNIL-21): who, in which group, the rights it brings
    with their last use (a JSON list), its reviewer (R-CNIL-22; NULL: nobody may review it), and
    its outcome: pending, kept, removed or reported (``removed`` also true when the closing
    detached it, R-CNIL-26)."""

    __tablename__ = "review_items"
    __table_args__ = (
        Index("ix_review_items_campaign_reviewer", "campaign_id", "reviewer"),
        Index("ix_review_items_campaign_organisation", "campaign_id", "organisation"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("review_campaigns.id"), nullable=False)
    organisation: Mapped[str] = mapped_column(String(64), nullable=False)
    login: Mapped[str] = mapped_column(String(120), nullable=False)
    group_code: Mapped[str] = mapped_column(String(64), nullable=False)
    membership_id: Mapped[int] = mapped_column(ForeignKey("memberships.id"), nullable=False)
    reviewer: Mapped[str | None] = mapped_column(String(120), nullable=True)
    reviewer_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    rights: Mapped[str] = mapped_column(Text, nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    removed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    decided_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    decided_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    comment: Mapped[str | None] = mapped_column(String(500), nullable=True)
