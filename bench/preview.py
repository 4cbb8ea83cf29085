"""Latency of a write's preview (``?dry_run=true``) on the largest organisation.

The preview runs through the real code path minus HTTP, as ``pdp.web.app`` builds it: the
partner admin of the organisation with the most users closes its group with the most members,
and gives a role to it, each under ``previewing`` (the write, read back from its transaction,
indexed and compared with the engine's index, then rolled back: nothing is written, so every
repeat previews the same write on the same store).

    python -m bench.preview --database-url sqlite:///bench/results/bench-scale1.0-seed1.sqlite3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from typing import Any

from pdp.adapters.sql.database import make_engine
from pdp.adapters.sql.snapshot import SqlSnapshotSource
from pdp.core.catalogue import load_catalogue
from pdp.engine.policy import PolicyEngine
from pdp.records.audit_trail import AuditChain
from pdp.records.decision_log import MemoryLog
from pdp.services.admin import grants, groups
from pdp.services.admin.preview import Preview, PreviewReady, previewing
from pdp.services.admin.requests import RoleRef
from pdp.services.admin.service import AdminService


def _preview(write: Any) -> Preview:
    token = previewing.set(True)
    try:
        write()
    except PreviewReady as ready:
        return ready.preview
    finally:
        previewing.reset(token)
    raise RuntimeError("the write was made instead of previewed")


def measure_previews(database_url: str, repeats: int = 10) -> dict[str, Any]:
    """Median and maximum latency of two previews on the largest organisation."""
    db = make_engine(database_url)
    catalogue = load_catalogue()
    engine = PolicyEngine(SqlSnapshotSource(db), catalogue)
    engine.load()
    svc = AdminService(db, engine, catalogue, AuditChain(), MemoryLog(), None)
    index, day = engine.index, svc.today().toordinal()
    org = max(index.orgs.values(), key=lambda o: len(o.logins))
    by_id = {index.users[login].id: login for login in org.logins}
    admin = next(by_id[u] for u, s, e in org.admins if s <= day < e and u in by_id)
    members: Counter[int] = Counter(
        gid for login in org.logins for gid, s, e in index.users[login].memberships if s <= day < e
    )
    top = [
        g
        for g, _ in members.most_common()
        if org.groups[g].parent_id is None and org.groups[g].start <= day < org.groups[g].end
    ]
    gid = top[0]
    group = org.groups[gid]
    held = {(s, r) for s, roles in group.roles.items() for r, _, _ in roles}
    subscribed = sorted(
        s for s, subs in org.subscriptions.items() if any(a <= day < b for _, a, b in subs)
    )
    service, role = next(
        (s, r) for s in subscribed for r in catalogue.services[s].roles if (s, r) not in held
    )
    figures: dict[str, Any] = {
        "organisation": org.code,
        "users": len(org.logins),
        "groups": len(org.groups),
        "group": group.code,
        "members": members[gid],
    }
    writes = {
        "close_group": lambda: groups.close_group(svc, admin, org.code, group.code),
        "assign_role": lambda: grants.assign_role(
            svc, admin, org.code, group.code, RoleRef(service=service, role=role)
        ),
    }
    for name, write in writes.items():
        times, preview = [], None
        for _ in range(repeats):
            started = time.perf_counter()
            preview = _preview(write)
            times.append((time.perf_counter() - started) * 1000)
        assert preview is not None
        figures[name] = {
            "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1),
            "user_changes": len(preview.users),
            "group_changes": len(preview.groups),
            "summary": preview.summary[:160],
        }
    db.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.preview", description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(
        json.dumps(measure_previews(args.database_url, args.repeats), ensure_ascii=False, indent=2)
    )


if __name__ == "__main__":
    main()
