"""Previews of administrative writes (``?dry_run=true``): what a write will do, before it is made
(R-ADM-7, R-DEC-1, R-DEC-4, R-GRP-2, R-GRP-4).

A preview answers, per user, the (service, role, Caf) and features they would gain or lose and
from which day, and the groups that would close or lose roles; it writes nothing (no revision,
no audit record, the engine unchanged); a write the rules refuse is refused by its preview with
the same answer. The property: on a store that random writes keep changing, every preview
equals the difference the engine observes once the write is really made, on today and on every
day the preview names.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pdp.engine.index import Index
from pdp.records.audit_trail import AuditReader, head_seq
from pdp.web.container import services

from support.actors import Api
from support.admin_bodies import role
from support.constants import MAIRIE, MAIRIE_CODE, PARTNER_ADMIN, SECRET, MakeApp

DRY = {"dry_run": "true"}
Item = tuple[str, ...]


@pytest.fixture
def app(make_app: MakeApp) -> Flask:
    app, _ = make_app(jwt_secret=SECRET)
    return app


@pytest.fixture
def api(app: Flask) -> Api:
    return Api(app.test_client(), AuditReader(services(app).db))


def written(app: Flask) -> tuple[int, int]:
    """The store's revision and its audit chain's length: a preview changes neither."""
    return services(app).engine.revision, head_seq(services(app).db)


def access(index: Index, login: str, day: dt.date, app: Flask) -> set[Item]:
    """What ``login`` may use on ``day``: (role, service, role, Caf) and (feature, service, f)."""
    catalogue = services(app).decisions.catalogue
    items: set[Item] = set()
    for service, (grants, cafs) in index.permissions(login, day.toordinal()).items():
        for grant in grants:
            items.update(("role", service, grant.role, caf) for caf in cafs)
            opened = catalogue.services[service].opens.get(grant.role, ())
            items.update(("feature", service, feature) for feature in opened)
    return items


def org_logins(app: Flask) -> list[str]:
    index = services(app).engine.index
    return list(index.org_by_code[MAIRIE_CODE].logins)


def previewed(change: dict[str, Any], day: dt.date) -> bool:
    """Whether a change of the preview holds on ``day``."""
    start = dt.date.fromisoformat(change["start"])
    until = change["until"] and dt.date.fromisoformat(change["until"])
    return start <= day and (until is None or day < until)


def item_of(change: dict[str, Any]) -> Item:
    if change["feature"] is not None:
        return ("feature", change["service"], change["feature"])
    return ("role", change["service"], change["role"], change["caf"])


def test_r_grp_2_closing_a_group_is_previewed_and_nothing_is_written(api: Api, app: Flask) -> None:
    before = written(app)
    r = api.call(PARTNER_ADMIN, "POST", f"{MAIRIE}/groups/CCAS-ACCUEIL/close", {}, query=DRY)
    assert r.status_code == 200, r.get_json()
    preview = r.get_json()
    assert (preview["applied"], preview["action"]) == (False, "group.close")
    today = services(app).engine.day(None).isoformat()
    # chloe.roux holds Cdap T1 through CCAS-ACCUEIL alone: she loses it, for every Caf of the
    # convention, and the features T1 opens; the group closes (with its roles).
    chloe = [c for c in preview["users"] if c["login"] == "chloe.roux"]
    assert {(c["change"], c["service"], c["role"], c["start"]) for c in chloe if c["role"]} == {
        ("loss", "cdap", "T1", today)
    }
    assert {c["feature"] for c in chloe if c["feature"]} == {"synthese", "resume"}
    assert [(g["group"], g["change"]) for g in preview["groups"]] == [("CCAS-ACCUEIL", "closes")]
    assert preview["summary"] == (
        "1 utilisateur perdra l'accès à Cdap (T1) ; le groupe CCAS-ACCUEIL sera clôturé."
    )
    # Nothing written: no revision, no audit record, and the group still open for the engine.
    assert written(app) == before
    assert api.check("chloe.roux", "cdap", "T1")["allowed"]


def test_r_adm_7_a_refused_write_is_refused_by_its_preview(api: Api, app: Flask) -> None:
    before = written(app)
    # A manager cannot close a group outside his perimeter: the same 403 as the write.
    body: dict[str, Any] = {}
    path = "/v1/organisations/habitat-93/groups/EB-PARC-PRIVE/close"
    dry = api.call("bruno.petit", "POST", path, body, query=DRY)
    real = api.call("bruno.petit", "POST", path, body)
    assert dry.status_code == real.status_code == 403
    assert dry.get_json()["error"]["code"] == real.get_json()["error"]["code"]
    bad = api.call(PARTNER_ADMIN, "POST", f"{MAIRIE}/groups/CCAS/close", {}, query={"dry_run": "x"})
    assert bad.status_code == 400
    assert written(app) == before


# -- the property: a preview is what the write then does -------------------------------------


def random_write(app: Flask, data: st.DataObject) -> tuple[str, str, dict[str, Any]]:
    """A write partner admin alice.martin may ask for on mairie-montreuil, drawn from its
    current state: close a group, remove or give a role, detach, attach or close a user, today
    or on a day to come."""
    index = services(app).engine.index
    org = index.org_by_code[MAIRIE_CODE]
    today = services(app).engine.day(None)
    groups = sorted(g.code for g in org.groups.values())
    logins = sorted(
        login
        for login in set(org.logins) - {PARTNER_ADMIN}  # the actor stays open
        if index.users[login].start <= today.toordinal() < index.users[login].end
    )
    day = data.draw(st.sampled_from([None, 0, 3, 20]), label="in days")
    when = None if day is None else (today + dt.timedelta(days=day)).isoformat()
    kind = data.draw(
        # Closings are rarer: once a group is closed, little of it can be written any more.
        st.sampled_from(["role", "role", "attach", "attach", "unrole", "detach", "user", "close"]),
        label="write",
    )
    group = data.draw(st.sampled_from(groups), label="group")
    login = data.draw(st.sampled_from(logins), label="user")
    service, name = data.draw(
        st.sampled_from([("cdap", "T1"), ("cdap", "T18"), ("adonis", "acces")]), label="role"
    )
    base = f"{MAIRIE}/groups/{group}"
    if kind == "close":
        return "POST", f"{base}/close", {"closes_on": when} if when else {}
    if kind == "unrole":
        return "DELETE", f"{base}/roles/{service}/{name}", {}
    if kind == "role":
        return "POST", f"{base}/roles", role(service, name)
    if kind == "detach":
        return "DELETE", f"{MAIRIE}/users/{login}/memberships/{group}", {}
    if kind == "attach":
        body = {"group": group} | ({"opens_on": when} if when else {})
        return "POST", f"{MAIRIE}/users/{login}/memberships", body
    # A user closed today could be written no more: closed on a day to come.
    later = (today + dt.timedelta(days=day or 10)).isoformat()
    return "PATCH", f"{MAIRIE}/users/{login}", {"closes_on": later}


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_r_dec_1_a_preview_is_what_the_write_then_does(api: Api, app: Flask, data: Any) -> None:
    method, path, body = random_write(app, data)
    engine = services(app).engine
    engine.refresh(force=True)
    before_index, before_state = engine.index, written(app)
    dry = api.call(PARTNER_ADMIN, method, path, body, query=DRY)
    assert written(app) == before_state, "a preview wrote something"
    preview = dry.get_json()
    today = engine.day(None)
    days = {today} | {
        dt.date.fromisoformat(d)
        for change in (preview["users"] + preview["groups"] if dry.status_code == 200 else [])
        for d in (change["start"], change["until"])
        if d is not None
    }
    logins = set(org_logins(app))
    # The engine's refresh changes its index in place: what it answered before, read now.
    before = {
        (login, day): access(before_index, login, day, app) for login in logins for day in days
    }
    real = api.call(PARTNER_ADMIN, method, path, body)
    event(f"{method} answered {real.status_code}")
    if real.status_code >= 400:  # refused: refused the same way by its preview
        assert dry.status_code == real.status_code, (dry.get_json(), real.get_json())
        assert dry.get_json() == real.get_json()
        return
    assert dry.status_code == 200, dry.get_json()
    engine.refresh(force=True)
    after_index = engine.index
    event("a change previewed" if preview["users"] or preview["groups"] else "nothing changes")
    for login in logins:
        mine = [c for c in preview["users"] if c["login"] == login]
        for day in sorted(days):
            was = before[login, day]
            now = access(after_index, login, day, app)
            gained = {item_of(c) for c in mine if c["change"] == "gain" and previewed(c, day)}
            lost = {item_of(c) for c in mine if c["change"] == "loss" and previewed(c, day)}
            where = f"{method} {path} {body}: {login} on {day}"
            assert now - was == gained, where
            assert was - now == lost, where


def test_the_preview_benchmark_runs_and_writes_nothing(demo_db: str, app: Flask) -> None:
    """bench.preview on the demo: both previews answer, and the store is as it was."""
    from bench.preview import measure_previews

    before = written(app)
    figures = measure_previews(demo_db, repeats=2)
    assert figures["close_group"]["group_changes"] >= 1
    assert figures["assign_role"]["median_ms"] > 0
    services(app).engine.refresh(force=True)
    assert written(app) == before
