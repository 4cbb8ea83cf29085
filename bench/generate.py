"""A seeded generator of a national-scale dataset, inserted into the domain store.

At scale 1.0: 20,000 organisations, 400,000 users, about 100,000 groups in trees up to four
levels below the top, 800,000 memberships and 150,000 group roles; 1-3 conventions per
organisation with ~100 Cafs, subscriptions to the services of the catalogue, Afas profiles,
group managers and partner admins. A share of every kind of record is closed, not yet open or
closing later, so that time matters and about half of the benchmark's queries are allowed.

The data respects the rules the administration will enforce: a top-level group holds only roles
of services subscribed under its convention and a sub-group only roles of its parent, within the
parent's dates (R-GRP-4); sub-groups close with their parent (R-GRP-2); memberships sit inside
their user's and group's dates (R-MEM-1); every group has one manager (R-ADM-3) and each
organisation one or two partner admins (R-ADM-1).

Rows are inserted with SQLAlchemy Core ``insert`` executemany in large batches, parents first,
in one transaction that ends with one ``record_change(..., [None], "bench load")``.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.orm import Session

from pdp.adapters.sql.database import record_change, upgrade
from pdp.adapters.sql.models import Base
from pdp.core.catalogue import Catalogue, load_catalogue
from pdp.core.clock import paris_today
from pdp.records.audit_trail import AuditChain, AuditEvent, now

RESULTS_DIR = Path(__file__).resolve().parent / "results"

FULL_SCALE = {
    "organisations": 20_000,
    "users": 400_000,
    "groups": 100_000,
    "memberships": 800_000,
    "group_roles": 150_000,
}

# Parents before children: SQLite checks foreign keys row by row.
TABLES = (
    "cafs",
    "organisations",
    "conventions",
    "subscriptions",
    "users",
    "groups",
    "memberships",
    "group_roles",
    "group_managers",
    "partner_admins",
    "afas_profiles",
)

BATCH = 50_000

# ~100 Caf codes: one per département (two for Corsica) and the overseas ones.
CAF_CODES = (
    [f"{d:02d}1" for d in range(1, 96) if d != 20]
    + ["2A1", "2B1"]
    + [f"97{d}" for d in (1, 2, 3, 4, 6)]
)

# Organisation kinds: share of organisations, and the chance of subscribing each service.
KINDS: tuple[tuple[str, float, dict[str, float]], ...] = (
    ("mairie", 0.35, {"cdap": 0.95, "adonis": 0.3, "afas": 0.1}),
    ("ccas", 0.15, {"cdap": 0.95, "afas": 0.2, "adonis": 0.2}),
    ("bailleur", 0.10, {"espace_bailleur": 1.0, "cdap": 0.3}),
    ("dgfip", 0.05, {"dgfip": 1.0, "cdap": 0.2}),
    ("association", 0.20, {"afas": 0.8, "cdap": 0.3}),
    ("autre", 0.15, {"cdap": 0.7, "adonis": 0.2, "dgfip": 0.05}),
)
OTHER_SERVICE = 0.05  # chance of a catalogue service no kind names (new services, R-CAT-1)

# How many memberships a user has (mean 2.0) and how many roles a top-level group holds.
MEMBERSHIPS_PER_USER = (0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4)
ROLES_PER_TOP_GROUP = (1, 1, 1, 2, 2, 3, 4)
MAX_DEPTH = 4  # levels below a top-level group
TOP_LEVEL_SHARE = 0.4

FIRST_NAMES = (
    *("marie", "nathalie", "isabelle", "sylvie", "catherine", "sophie", "christine"),
    *("valerie", "sandrine", "julie", "jean", "pierre", "michel", "philippe", "alain"),
    *("nicolas", "christophe", "patrick", "laurent", "thomas"),
)
LAST_NAMES = (
    *("martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand"),
    *("leroy", "moreau", "simon", "laurent", "lefebvre", "michel", "garcia", "david"),
    *("bertrand", "roux", "vincent", "fournier", "morel", "girard", "andre", "mercier"),
)


@dataclass(frozen=True)
class Shares:
    """Chances that a record is closed already, opens later, or is open and closes later."""

    closed: float
    future: float
    closing: float


SHARES = {
    "organisations": Shares(0.005, 0.0, 0.0),
    "conventions": Shares(0.03, 0.01, 0.02),
    "subscriptions": Shares(0.06, 0.02, 0.03),
    "users": Shares(0.08, 0.03, 0.04),
    "groups": Shares(0.04, 0.01, 0.02),
    "memberships": Shares(0.10, 0.03, 0.05),
    "group_roles": Shares(0.04, 0.01, 0.02),
    "afas_profiles": Shares(0.08, 0.02, 0.03),
    "partner_admins": Shares(0.03, 0.0, 0.0),
}

# A window in days relative to today: [opens, closes), closes None = open-ended.
Window = tuple[int, int | None]


@dataclass
class GenerateStats:
    """What ``generate`` inserted: rows per table, the day it is relative to, and its time."""

    scale: float
    seed: int
    today: dt.date
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    revision: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "scale": self.scale,
            "seed": self.seed,
            "today": self.today.isoformat(),
            "counts": dict(self.counts),
            "seconds": round(self.seconds, 3),
            "revision": self.revision,
        }


def default_database_url(scale: float, seed: int) -> str:
    """The SQLite file under ``bench/results/`` used when no database URL is given."""
    return f"sqlite:///{RESULTS_DIR / f'bench-scale{scale:g}-seed{seed}.sqlite3'}"


def remove_sqlite_file(url: str) -> None:
    """Delete a SQLite database file and its WAL companions (no-op for other databases); make
    sure its folder exists."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix or ":memory:" in url:
        return
    path = Path(url[len(prefix) :])
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _inside(outer: Window, inner: Window) -> Window:
    """Intersect ``inner`` with ``outer``; an empty intersection falls back to ``outer``."""
    opens = max(outer[0], inner[0])
    ends = [c for c in (outer[1], inner[1]) if c is not None]
    closes = min(ends) if ends else None
    if closes is not None and closes <= opens:
        return outer
    return opens, closes


def _weights(rng: random.Random, n: int) -> list[float]:
    """Heavy-tailed organisation sizes: many small partners, a few with a thousand users."""
    return [min(rng.paretovariate(1.3), 300.0) for _ in range(n)]


def _apportion(total: int, weights: list[float], minimum: int) -> list[int]:
    """Split ``total`` in proportion to ``weights``, each at least ``minimum``."""
    factor = total / sum(weights)
    return [max(minimum, round(w * factor)) for w in weights]


class _Generator:
    """Builds rows organisation by organisation and inserts them in batches."""

    def __init__(
        self, conn: Connection, catalogue: Catalogue, rng: random.Random, today: dt.date
    ) -> None:
        self.conn = conn
        self.catalogue = catalogue
        self.rng = rng
        self.today = today
        self.tables = Base.metadata.tables
        self.rows: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
        self.buffered = 0
        self.counts = dict.fromkeys(TABLES, 0)
        self.ids = dict.fromkeys(TABLES, 0)
        self._dates: dict[int, dt.date] = {}
        self.caf_ids: dict[str, int] = {}

    # -- plumbing ------------------------------------------------------------------------------

    def day(self, offset: int | None) -> dt.date | None:
        """The date ``offset`` days from today (None stays None)."""
        if offset is None:
            return None
        date = self._dates.get(offset)
        if date is None:
            date = self._dates[offset] = self.today + dt.timedelta(days=offset)
        return date

    def add(self, table: str, window: Window | None = None, **values: Any) -> int:
        """Queue one row with the next id of its table; flush every table when enough wait."""
        self.ids[table] += 1
        row_id = self.ids[table]
        values["id"] = row_id
        if window is not None:
            values["opens_on"] = self.day(window[0])
            values["closes_on"] = self.day(window[1])
        self.rows[table].append(values)
        self.buffered += 1
        if self.buffered >= BATCH:
            self.flush()
        return row_id

    def flush(self) -> None:
        """Insert every queued row, parents first (one executemany per table)."""
        for name in TABLES:
            rows = self.rows[name]
            if rows:
                self.conn.execute(insert(self.tables[name]), rows)
                self.counts[name] += len(rows)
                self.rows[name] = []
        self.buffered = 0

    def window(self, kind: str) -> Window:
        """Draw a window for a record of ``kind`` following ``SHARES``."""
        s, rng = SHARES[kind], self.rng
        r = rng.random()
        if r < s.closed:
            closes = -rng.randint(0, 720)  # 0: closing today, which takes effect at once
            return closes - rng.randint(1, 2000), closes
        if r < s.closed + s.future:
            return rng.randint(1, 120), None
        if r < s.closed + s.future + s.closing:
            return -rng.randint(1, 2000), rng.randint(1, 365)
        return -rng.randint(0, 2500), None

    # -- the dataset ---------------------------------------------------------------------------

    def cafs(self) -> None:
        """Insert the ~100 Cafs and one operator (a Caf-side user) per ten of them."""
        for code in CAF_CODES:
            self.caf_ids[code] = self.add("cafs", code=code, name=f"Caf {code}")
        self.flush()
        for code in CAF_CODES[::10]:
            self.add(
                "users",
                (-3000, None),
                login=f"op.caf{code.lower()}",
                organisation_id=None,
                first_name="Opérateur",
                last_name=f"Caf {code}",
                email=f"op.caf{code.lower()}@caf.example.fr",
                is_operator=True,
            )

    def services_of(self, kind_services: dict[str, float]) -> list[str]:
        """Draw the services an organisation of some kind subscribes (at least one)."""
        chosen = [
            name
            for name in self.catalogue.services
            if self.rng.random() < kind_services.get(name, OTHER_SERVICE)
        ]
        if not chosen:
            likely = max(kind_services, key=lambda s: kind_services[s])
            chosen = [
                likely if likely in self.catalogue.services else next(iter(self.catalogue.services))
            ]
        return chosen

    def organisation(self, n_users: int, n_groups: int) -> None:
        """Insert one organisation and everything under it."""
        rng = self.rng
        kinds = [k for k, _, _ in KINDS]
        kind = rng.choices(kinds, weights=[w for _, w, _ in KINDS])[0]
        kind_services = next(s for k, _, s in KINDS if k == kind)
        org_window = _inside((-4000, None), (-rng.randint(400, 4000), None))
        if rng.random() < SHARES["organisations"].closed:
            org_window = (org_window[0], -rng.randint(0, 300))
        code = f"{kind}-{self.ids['organisations'] + 1:05d}"
        org_id = self.add(
            "organisations", org_window, code=code, name=f"{kind.title()} {code}", kind=kind
        )

        # Conventions (R-CON-1) and their subscriptions; the first holds every service.
        services = self.services_of(kind_services)
        home = rng.choice(CAF_CODES)
        cafs = [home, *rng.sample(CAF_CODES, rng.choice((0, 0, 0, 0, 0, 0, 1, 1, 1, 2)))]
        conv_services: dict[int, list[str]] = {}
        for i, caf in enumerate(dict.fromkeys(cafs)):
            conv_window = _inside(org_window, self.window("conventions"))
            conv_id = self.add(
                "conventions",
                conv_window,
                organisation_id=org_id,
                caf_id=self.caf_ids[caf],
                reference=f"CONV-{code}-{caf}",
            )
            subscribed = (
                services
                if i == 0
                else [s for s in services if rng.random() < (0.7 if s == "cdap" else 0.15)]
            )
            conv_services[conv_id] = subscribed
            for service in subscribed:
                self.add(
                    "subscriptions",
                    _inside(conv_window, self.window("subscriptions")),
                    convention_id=conv_id,
                    service=service,
                )
        first_conv = next(iter(conv_services))

        # Users (R-USR-1).
        users: list[tuple[int, Window]] = []
        for _ in range(n_users):
            uid = self.ids["users"] + 1
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            login = f"{first}.{last}.{uid}"
            window = _inside(org_window, self.window("users"))
            self.add(
                "users",
                window,
                login=login,
                organisation_id=org_id,
                first_name=first.title(),
                last_name=last.upper(),
                email=f"{login}@{code}.example.fr",
                is_operator=False,
            )
            users.append((uid, window))

        groups = self.groups(org_id, code, org_window, n_groups, conv_services, first_conv, users)
        self.memberships(users, groups)
        for uid, window in rng.sample(users, min(len(users), rng.choice((1, 1, 2)))):
            admin_window = _inside(window, self.window("partner_admins"))
            self.add("partner_admins", admin_window, organisation_id=org_id, user_id=uid)
        if "afas" in services and "afas" in self.catalogue.services:
            profiles = self.catalogue.services["afas"].user_profiles
            for uid, window in users:
                if profiles and rng.random() < 0.25:
                    for profile in rng.sample(profiles, rng.choice((1, 1, 2))):
                        self.add(
                            "afas_profiles",
                            _inside(window, self.window("afas_profiles")),
                            user_id=uid,
                            profile=profile,
                        )

    def groups(
        self,
        org_id: int,
        org_code: str,
        org_window: Window,
        n_groups: int,
        conv_services: dict[int, list[str]],
        first_conv: int,
        users: list[tuple[int, Window]],
    ) -> list[tuple[int, Window]]:
        """Insert the organisation's group trees, their roles and managers."""
        rng = self.rng
        usable = [c for c, s in conv_services.items() if s] or [first_conv]
        managers = [u for u in users if u[1][1] is None] or users  # open-ended users first
        # (id, depth, convention, window, roles with their windows)
        made: list[tuple[int, int, int, Window, dict[tuple[str, str], Window]]] = []

        def new_group(
            parent: tuple[int, int, int, Window, dict[tuple[str, str], Window]] | None,
            conv: int,
            roles: list[tuple[str, str]],
            label: str,
            system: bool = False,
        ) -> None:
            outer = org_window if parent is None else parent[3]
            window = _inside(outer, self.window("groups"))  # sub-groups close with it (R-GRP-2)
            gid = self.add(
                "groups",
                window,
                organisation_id=org_id,
                convention_id=conv,
                parent_id=None if parent is None else parent[0],
                code=f"G{len(made) + 1:04d}",
                label=label,
                is_system=system,
            )
            held: dict[tuple[str, str], Window] = {}
            for service, role in dict.fromkeys(roles):
                role_outer = window if parent is None else _inside(window, parent[4][service, role])
                held[service, role] = role_window = _inside(role_outer, self.window("group_roles"))
                self.add("group_roles", role_window, group_id=gid, service=service, role=role)
            made.append((gid, 0 if parent is None else parent[1] + 1, conv, window, held))
            if managers:
                self.add("group_managers", window, group_id=gid, user_id=rng.choice(managers)[0])
                if rng.random() < 0.05:  # a former manager, replaced (R-ADM-3)
                    past = (window[0] - rng.randint(30, 900), window[0])
                    self.add("group_managers", past, group_id=gid, user_id=rng.choice(users)[0])

        # Espace Bailleur's system groups, one per housing type (R-GRP-3).
        eb = self.catalogue.services.get("espace_bailleur")
        if eb is not None and "espace_bailleur" in conv_services[first_conv] and n_groups >= 2:
            for role in eb.roles:
                new_group(None, first_conv, [("espace_bailleur", role)], f"EB {role}", True)
        while len(made) < n_groups:
            parents = [g for g in made if g[1] < MAX_DEPTH]
            if parents and rng.random() >= TOP_LEVEL_SHARE:
                parent = rng.choice(parents)
                held = list(parent[4])
                # A sub-group holds only roles of its parent (R-GRP-4).
                roles = rng.sample(held, rng.randint(1, len(held))) if held else []
                new_group(parent, parent[2], roles, f"Sous-groupe de {org_code}")
            else:
                conv = rng.choice(usable)
                subscribed = conv_services[conv]
                roles = []
                for _ in range(rng.choice(ROLES_PER_TOP_GROUP) if subscribed else 0):
                    service = rng.choice(subscribed)
                    roles.append((service, rng.choice(self.catalogue.services[service].roles)))
                new_group(None, conv, roles, f"Groupe de {org_code}")
        return [(gid, window) for gid, _d, _c, window, _r in made]

    def memberships(
        self, users: list[tuple[int, Window]], groups: list[tuple[int, Window]]
    ) -> None:
        """Attach users to groups of their organisation (R-MEM-1), within both windows."""
        rng = self.rng
        if not groups:
            return
        for uid, user_window in users:
            for _ in range(rng.choice(MEMBERSHIPS_PER_USER)):
                gid, group_window = rng.choice(groups)
                within = _inside(group_window, _inside(user_window, self.window("memberships")))
                self.add("memberships", within, user_id=uid, group_id=gid)


def _advance_sequences(conn: Connection) -> None:
    """PostgreSQL: move each id sequence past the explicit ids inserted, for later writes."""
    if conn.dialect.name != "postgresql":
        return  # SQLite picks max(id) + 1 by itself
    quote = conn.dialect.identifier_preparer.quote
    for name in TABLES:
        table = quote(name)
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table} "
                "HAVING max(id) IS NOT NULL"
            )
        )


def generate(
    engine: Engine,
    scale: float,
    seed: int,
    *,
    today: dt.date | None = None,
    catalogue: Catalogue | None = None,
) -> GenerateStats:
    """Migrate the store, fill it with the dataset of ``scale`` and ``seed``, return its stats.

    Raises ValueError if the store already holds organisations.
    """
    started = time.perf_counter()
    today = today or paris_today()
    catalogue = catalogue or load_catalogue()
    rng = random.Random(seed)
    upgrade(engine)
    n_orgs = max(2, round(FULL_SCALE["organisations"] * scale))
    weights = _weights(rng, n_orgs)
    users = _apportion(round(FULL_SCALE["users"] * scale), weights, 2)
    groups = _apportion(round(FULL_SCALE["groups"] * scale), weights, 1)
    with Session(engine) as session, session.begin():
        conn = session.connection()
        orgs = Base.metadata.tables["organisations"]
        if conn.execute(select(func.count()).select_from(orgs)).scalar_one():
            raise ValueError("the database already holds organisations: use an empty one")
        gen = _Generator(conn, catalogue, rng, today)
        gen.cafs()
        for n_users, n_groups in zip(users, groups, strict=True):
            gen.organisation(n_users, n_groups)
        gen.flush()
        _advance_sequences(conn)
        revision = record_change(session, [None], "bench load")
        # One record for the whole load: every revision leaves one (`pdp audit verify`).
        load = AuditEvent(
            "pdp-bench-load",
            "bench.load",
            "platform",
            None,
            None,
            {"scale": scale, "seed": seed, **gen.counts},
            revision,
            now(),
        )
        AuditChain().append(session, [load], None)
    return GenerateStats(scale, seed, today, gen.counts, time.perf_counter() - started, revision)
