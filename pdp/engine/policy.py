"""The engine: keeps the index in step with the store and answers queries.

Freshness: at most every ``refresh_interval`` seconds (and at once after a local write), the
engine reads the change log after its revision. A change that names a part of an organisation
(a user, a group, its structure: ``pdp.engine.snapshot.Change``) makes it read just those rows
and apply them (``pdp.engine.index_delta``), recomputing only the grants that may change; a
change that names a whole organisation (or a scope it does not know) replaces that partition; a
change with no organisation, or too many organisations at once, reloads everything, built aside
and swapped in by reference.

The invariant that replaces "an index is never mutated": the index is changed in place only by
``refresh``, on the one thread that answers requests (workers are single-threaded processes:
pycasbin is not thread-safe, and a reload during checks gave false denials), between two
answers, after the rows the changes name have been read. A reader that holds ``engine.index``
for the length of one answer (a listing, a preview's "before") therefore never sees half a
change, and the read path takes no lock. Other threads (the watcher) only raise the shared
revision (``observe``). If applying a change fails midway, the whole index is rebuilt; if that
fails too, checks deny (POLICY_UNAVAILABLE) until a refresh succeeds.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import gc
import logging
import random
import time
from collections.abc import Callable, Iterable
from multiprocessing import Lock
from multiprocessing.sharedctypes import RawValue
from typing import Protocol

from pdp.core.catalogue import Catalogue
from pdp.core.clock import CachedToday
from pdp.core.errors import ConfigurationError, Unavailable
from pdp.engine.actions import Action
from pdp.engine.casbin_model import ReferenceEnforcer, sample_queries
from pdp.engine.decision import MESSAGES, Decision, Grant, Query, Reason
from pdp.engine.index import Index
from pdp.engine.index_delta import apply_groups, apply_structure, apply_users, replace_partitions
from pdp.engine.rules import AdminReason, Rights, Target, authorise, load_rights
from pdp.engine.snapshot import GROUP, STRUCTURE, USER, Change, Delta, Snapshot

log = logging.getLogger("pdp.engine")


class SnapshotSource(Protocol):
    """Where the engine reads the domain store from."""

    def load(self, organisation_ids: Iterable[int] | None = None) -> Snapshot:
        """Return a consistent snapshot (of the given organisations only, when given)."""

    def changes_since(self, revision: int) -> list[Change]:
        """Return the changes after ``revision``, oldest first."""

    def load_delta(
        self, user_ids: Iterable[int], organisation_ids: Iterable[int], group_ids: Iterable[int]
    ) -> Delta:
        """Return the rows of some users and groups, and the structure of some organisations
        (``Delta``)."""


class EngineObserver(Protocol):
    """Told what the engine does, for metrics (``pdp.observability.metrics.EngineMetrics``)."""

    def loaded(self, seconds: float) -> None:
        """The whole index was built from the store in ``seconds``."""

    def fresh(self, revision: int) -> None:
        """The policy at ``revision`` was just confirmed against the store."""


class Unobserved:
    """An observer told nothing (an engine built outside the service: tests, the bench)."""

    def loaded(self, seconds: float) -> None:
        """Nothing."""

    def fresh(self, revision: int) -> None:
        """Nothing."""


class PolicyEngine:
    """Answers checks from an in-memory index kept fresh from a ``SnapshotSource``."""

    def __init__(
        self,
        source: SnapshotSource,
        catalogue: Catalogue,
        *,
        clock: Callable[[], dt.date] | None = None,
        refresh_interval: float = 1.0,
        full_reload_threshold: int = 200,
        max_staleness: float = 300.0,
        rights: Rights | None = None,
        observer: EngineObserver | None = None,
    ) -> None:
        self.source = source
        self.observer: EngineObserver = observer or Unobserved()
        self.catalogue = catalogue
        self.rights = rights if rights is not None else load_rights()
        self._today = CachedToday() if clock is None else None  # the check path's fast clock
        self.clock: Callable[[], dt.date] = clock or self._today  # type: ignore[assignment]
        self.refresh_interval = refresh_interval
        self.full_reload_threshold = full_reload_threshold
        self.max_staleness = max_staleness
        self.index = Index()
        self._polled_at = float("-inf")
        self._fresh_at = float("-inf")  # last time the index was known to match the store
        # The latest revision written through any worker of this instance: shared memory made
        # before gunicorn forks, so a write in one worker is seen by the next check in another.
        self._written = RawValue(ctypes.c_int64, 0)
        self._written_lock = Lock()  # writers only; checks read the value without it

    @property
    def revision(self) -> int:
        """The policy revision the current index reflects."""
        return self.index.revision

    def load(self) -> None:
        """Build the whole index from the store."""
        started = time.perf_counter()
        # Millions of short- and long-lived objects: collecting while building them only costs
        # time, and once built, freezing them keeps every later collection (a pause in some
        # check) from walking the organisations' partitions again.
        gc.disable()
        try:
            self.index = Index.build(self.source.load())
        finally:
            gc.enable()
        gc.collect()
        gc.freeze()
        _return_free_memory()
        self._polled_at = self._fresh_at = time.monotonic()
        self.observer.loaded(time.perf_counter() - started)
        self.observer.fresh(self.index.revision)
        log.info(
            "index loaded: revision %s, %s users, %s organisations in %.2f s",
            self.index.revision,
            len(self.index.users),
            len(self.index.orgs),
            time.perf_counter() - started,
        )

    def refresh(self, force: bool = False) -> None:
        """Apply the changes committed since the index's revision (throttled unless forced).

        Never raises: if the store cannot be read, the index is kept and the failure logged;
        once it is older than ``max_staleness`` seconds, checks deny (see ``stale``).
        """
        now = time.monotonic()
        if (
            not force
            and now - self._polled_at < self.refresh_interval
            and self._written.value <= self.index.revision
        ):
            return
        self._polled_at = now
        try:
            changes = self.source.changes_since(self.index.revision)
            if changes:
                self._apply(changes)
        except Exception:
            log.exception("refresh failed; serving revision %s", self.index.revision)
            return
        self._fresh_at = now
        self.observer.fresh(self.index.revision)

    def _apply(self, changes: list[Change]) -> None:
        """Bring the index to the last of ``changes``: every row is read first, then the index
        is changed in place (see the module). Raises if the store cannot be read."""
        orgs = {c.organisation_id for c in changes}
        if None in orgs or len(orgs) > self.full_reload_threshold:
            self.load()
            return
        whole = {c.organisation_id for c in changes if c.scope not in (USER, GROUP, STRUCTURE)}
        whole |= {
            c.organisation_id for c in changes if c.scope != STRUCTURE and c.subject_id is None
        }
        users: dict[int, set[int]] = {}
        groups: dict[int, set[int]] = {}
        structures = {c.organisation_id for c in changes if c.scope == STRUCTURE} - whole
        for c in changes:
            org = c.organisation_id
            if org is None or org in whole or c.subject_id is None:
                continue
            if c.scope == USER:
                users.setdefault(c.subject_id, set()).add(org)
            elif c.scope == GROUP:  # after a structure too: it does not hold the memberships
                groups.setdefault(c.subject_id, set()).add(org)
        # The rows may be newer than the changes read: a change committed meanwhile is applied
        # again at the next poll. Claim only the revisions actually read.
        revision = max(c.revision for c in changes)
        snap = self.source.load(o for o in whole if o is not None) if whole else None
        delta = (
            self.source.load_delta(users, {o for o in structures if o is not None}, groups)
            if users or structures or groups
            else None
        )
        try:
            self._change(snap, delta, users, groups)
        except Exception:
            log.exception("applying changes failed midway; rebuilding the whole index")
            self._fresh_at = float("-inf")  # checks deny until the rebuild succeeds
            self.load()
            return
        # A whole rebuild (a user without an organisation...) may already be newer.
        self.index.revision = max(self.index.revision, revision)

    def _change(
        self,
        snap: Snapshot | None,
        delta: Delta | None,
        users: dict[int, set[int]],
        groups: dict[int, set[int]],
    ) -> None:
        """Change the index in place with rows already read; a user or group that cannot be
        applied alone (moved or gone) reloads its partitions, or everything."""
        # As in load(): no collection while the new objects are made (at national scale it
        # halved a partition's rebuild, 72 → 39 ms).
        gc.disable()
        try:
            if snap is not None:
                replace_partitions(self.index, snap)
            more: set[int | None] = set()
            if delta is not None:
                more |= apply_structure(self.index, delta.structure)
                more |= apply_groups(self.index, delta.groups, groups)
                more |= apply_users(self.index, delta.users, users)
            if None in more:
                self.load()
            elif more:
                replace_partitions(self.index, self.source.load(o for o in more if o is not None))
        finally:
            gc.enable()

    def notify(self, revision: int) -> None:
        """A write committed ``revision``: apply it now, and make every worker of this
        instance apply it before its next answer."""
        self.observe(revision)
        self.refresh(force=True)

    def observe(self, revision: int) -> None:
        """The store is known to hold ``revision`` (a write, a notification): every worker of
        this instance applies it before its next answer. Safe from any thread: it only raises
        a shared number; the index is replaced by the request path alone."""
        with self._written_lock:
            if revision > self._written.value:
                self._written.value = revision

    def wait_for(self, revision: int, timeout: float, poll: float = 0.05) -> str:
        """Bring the index to ``revision`` or later (read-your-writes: a caller who wrote
        revision N asks to be answered from N or later). Returns "reached"; "unknown" when the
        store, read just now, is itself older (no such revision was ever committed there); or
        "unreachable" when the store could not be read within ``timeout`` seconds."""
        if self.index.revision >= revision:
            return "reached"
        deadline = time.monotonic() + timeout
        while True:
            asked = time.monotonic()
            self.refresh(force=True)
            if self.index.revision >= revision:
                return "reached"
            if self._fresh_at >= asked:
                return "unknown"
            left = deadline - time.monotonic()
            if left <= 0:
                return "unreachable"
            time.sleep(min(poll, left))

    @property
    def stale(self) -> bool:
        """Whether the index has not been confirmed against the store for too long."""
        return time.monotonic() - self._fresh_at > self.max_staleness

    def day(self, at: dt.date | None) -> dt.date:
        """The day a query is about: ``at`` or today in Europe/Paris."""
        return at if at is not None else self.clock()

    def check(self, query: Query) -> Decision:
        """Decide R-DEC-1. Never raises: any error denies with ENGINE_ERROR (R-DEC-2).

        The hot path: one clock read, and decisions built with ``tuple.__new__`` (a named
        tuple's own constructor costs more than the rest of a denial).
        """
        index = self.index
        now = time.monotonic()
        at = query.day
        if at is not None:
            day, ordinal = at, at.toordinal()
        elif self._today is not None:
            day, ordinal = self._today.at(now)
        else:
            day = self.clock()
            ordinal = day.toordinal()
        if now - self._fresh_at > self.max_staleness:
            return _decision(False, Reason.POLICY_UNAVAILABLE, (), index.revision, day)
        try:
            feature = query.feature
            opening = None if feature is None else self._opening(query.service, feature)
            reason, grants = index.decide(
                query.user, query.service, query.role, query.caf, ordinal, opening
            )
        except Exception:
            log.exception("check failed, denying: %r", query)
            return _decision(False, Reason.ENGINE_ERROR, (), index.revision, day)
        return _decision(reason is Reason.ALLOWED, reason, grants, index.revision, day)

    def _opening(self, service: str, feature: str) -> frozenset[str]:
        """The roles that open ``feature`` of ``service`` (none for an unknown one)."""
        svc = self.catalogue.services.get(service)
        return svc.opened_by(feature) if svc is not None else frozenset()

    def authorise(self, actor: str, action: Action, target: Target) -> AdminReason:
        """Decide an administrative action today (R-ADM-7). Never raises: fails closed.

        ``action`` and ``target`` must have been validated (``Rights.validate``).
        """
        index = self.index
        if self.stale:
            return AdminReason.POLICY_UNAVAILABLE
        try:
            return authorise(index, self.rights, actor, action, target, self.clock().toordinal())
        except Exception:
            log.exception(
                "administrative decision failed, refusing: %s %s %s", actor, action, target
            )
            return AdminReason.ENGINE_ERROR

    def permissions(
        self, login: str, at: dt.date | None
    ) -> dict[str, tuple[list[Grant], list[str]]]:
        """Every service the user may use on the day, with its grants and Cafs (R-DEC-4).
        Raises Unavailable (ENGINE_ERROR) if the index fails: a listing is never guessed."""
        try:
            return self.index.permissions(login, self.day(at).toordinal())
        except Exception:
            log.exception("permissions listing failed: %r", login)
            raise Unavailable(MESSAGES[Reason.ENGINE_ERROR], code="ENGINE_ERROR") from None

    def verify(self, sample_orgs: int, seed: int = 0, queries_per_org: int = 50) -> int:
        """Compare the index with plain Casbin on a sample of organisations; return the count.

        Raises ConfigurationError on the first disagreement: better not to serve than to serve
        answers Casbin would not give.
        """
        org_ids = sorted(self.index.orgs)
        if not org_ids or sample_orgs <= 0:
            return 0
        rng = random.Random(seed)
        chosen = rng.sample(org_ids, min(sample_orgs, len(org_ids)))
        snap = self.source.load(chosen)
        index = Index.build(snap)
        services = {
            name: svc.roles + svc.user_profiles for name, svc in self.catalogue.services.items()
        }
        today = self.clock()
        checked = 0
        for offset in (-400, 0, 400):
            day = today + dt.timedelta(days=offset)
            reference = ReferenceEnforcer.for_day(snap, day.toordinal(), self.catalogue)
            codes = {oid: code for oid, code, _ in snap.organisations}
            orgs_of = {login: org for _, login, org, _, _ in snap.users}
            for login, service, role, caf in sample_queries(
                snap, services, rng, queries_per_org * len(chosen)
            ):
                fast = (
                    index.decide(login, service, role, caf, day.toordinal()).reason
                    is Reason.ALLOWED
                )
                org = orgs_of[login]
                slow = (
                    reference.allowed(login, codes[org], service, role, caf)
                    if org is not None
                    else False
                )
                features = self.catalogue.services[service].features
                if features and fast == slow:  # and a feature of the service, asked alone
                    role, feature = None, rng.choice(features)
                    opening = self._opening(service, feature)
                    fast = (
                        index.decide(login, service, None, caf, day.toordinal(), opening).reason
                        is Reason.ALLOWED
                    )
                    slow = org is not None and reference.allowed(
                        login, codes[org], service, None, caf, feature
                    )
                else:
                    feature = None
                if fast != slow:
                    raise ConfigurationError(
                        f"engine self-check: fast path says {fast}, Casbin says {slow} for "
                        f"{login} {service} {role or feature} {caf} on {day}"
                    )
                checked += 1
        return checked


def _return_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``): the
    snapshot's rows and the users' objects are gone once the index is built (its users are
    flat records, ``pdp.engine.users_table``), and what the heap keeps would stay in this
    process and in every worker forked from it (135 MiB at national scale). Elsewhere: nothing."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return
    trim(0)


def _decision(
    allowed: bool, reason: Reason, grants: tuple[Grant, ...], revision: int, day: dt.date
) -> Decision:
    """Build a Decision without the named tuple's Python-level constructor."""
    return tuple.__new__(Decision, (allowed, reason, grants, revision, day))
