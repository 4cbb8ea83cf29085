"""Access reviews (revue des habilitations, R-CNIL-20..29 in docs/rules.md) through the HTTP
API on the demo data: mairie-montreuil's partner admin alice.martin opens a review, its manager
bruno.petit reviews what is his, the closing reports (and, if asked, removes) what is left.

The demo's mairie-montreuil, on the opening day, has three open memberships of open users in
open groups: bruno.petit in CCAS and in CCAS-INSTRUCTION (both managed by bruno himself, CCAS
at the top: no manager above, so alice.martin reviews them, R-CNIL-22) and chloe.roux in
CCAS-ACCUEIL (bruno reviews it). david.leroy is closed, fabien.morel not yet open, emma.garnier's
group closed: none of them is an item (R-CNIL-21).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from sqlalchemy.orm import sessionmaker

from pdp.adapters.sql.models import LastUse, ReviewCampaign
from pdp.services.reviews.campaigns import close_due
from pdp.web.container import services

from support.actors import Api
from support.constants import MAIRIE, MAIRIE_CODE, MANAGER, OPERATOR, PARTNER_ADMIN

ADMIN = PARTNER_ADMIN


def due(today: dt.date, days: int = 30) -> str:
    return (today + dt.timedelta(days=days)).isoformat()


def open_review(api: Api, today: dt.date, who: str = ADMIN, **extra: Any) -> dict[str, Any]:
    body = {"organisations": [MAIRIE_CODE], "due_on": due(today), **extra}
    before = api.revision()
    out = api.ok(who, "POST", "/v1/reviews", body, 201)
    assert api.revision() == before  # opening changes no right
    return out


def items_of(api: Api, who: str, campaign: int) -> list[dict[str, Any]]:
    return api.get(who, f"/v1/reviews/{campaign}/items")["items"]  # type: ignore[no-any-return]


def by_key(items: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(i["login"], i["group"]): i for i in items}


def test_open_items_and_reviewers(api: Api, today: dt.date) -> None:
    """R-CNIL-20, R-CNIL-21, R-CNIL-22, R-CNIL-28: the items are the open memberships, each with its
    rights, given to the group's manager, or to the partner admin when the manager above is
    the user reviewed; the opening is audited, once per organisation."""
    out = open_review(api, today)
    campaign = out["campaign"]
    assert (out["items"], out["unassigned"]) == (3, 0)
    assert (campaign["status"], campaign["organisations"]) == ("open", [MAIRIE_CODE])
    assert campaign["opened_by"] == ADMIN
    events = api.audit.events  # type: ignore[union-attr]
    assert [(e.actor, e.action, e.target, e.organisation) for e in events] == [
        (ADMIN, "review.open", f"review:{campaign['id']}", MAIRIE_CODE)
    ]
    assert events[0].after is not None and events[0].after["items"] == 3
    mine = by_key(items_of(api, ADMIN, campaign["id"]))
    assert sorted(mine) == [("bruno.petit", "CCAS"), ("bruno.petit", "CCAS-INSTRUCTION")]
    assert {i["reviewer_kind"] for i in mine.values()} == {"partner_admin"}
    ccas = mine[("bruno.petit", "CCAS")]
    assert [(r["service"], r["role"]) for r in ccas["rights"]] == [
        ("adonis", "acces"),
        ("cdap", "T1"),
        ("cdap", "T18"),
    ]
    assert ccas["outcome"] == "pending" and ccas["removed"] is False
    bruno = items_of(api, MANAGER, campaign["id"])
    assert [(i["login"], i["group"], i["reviewer_kind"]) for i in bruno] == [
        ("chloe.roux", "CCAS-ACCUEIL", "manager")
    ]


def test_items_carry_last_use(api: Api, today: dt.date) -> None:
    """R-CNIL-21: each right of an item carries the features it opens (the catalogue) and the
    last day it was used (the last_use table, R-CNIL-1), null when never used."""
    db = services(api.client.application).db
    with sessionmaker(db).begin() as session:
        session.add(LastUse(login="chloe.roux", service="cdap", role="T1", day=today))
        session.add(LastUse(login="bruno.petit", service="cdap", role="T18", day=today))
    campaign = open_review(api, today)["campaign"]["id"]
    chloe = items_of(api, MANAGER, campaign)[0]
    assert chloe["rights"] == [
        {
            "service": "cdap",
            "role": "T1",
            "features": ["synthese", "resume"],
            "last_use": today.isoformat(),
        }
    ]
    ccas = by_key(items_of(api, ADMIN, campaign))[("bruno.petit", "CCAS")]
    assert [r["last_use"] for r in ccas["rights"]] == [None, None, today.isoformat()]


def test_nearest_manager_above(api: Api, today: dt.date) -> None:
    """R-CNIL-22: chloe.roux made manager of her own group CCAS-ACCUEIL: her membership goes
    to the manager above, bruno.petit (CCAS)."""
    api.write(
        ADMIN,
        "PUT",
        f"{MAIRIE}/groups/CCAS-ACCUEIL/manager",
        {"login": "chloe.roux", "replaces": MANAGER},
    )
    campaign = open_review(api, today)["campaign"]["id"]
    bruno = by_key(items_of(api, MANAGER, campaign))
    assert bruno[("chloe.roux", "CCAS-ACCUEIL")]["reviewer_kind"] == "manager"
    api.refused(
        "chloe.roux", "GET", f"/v1/reviews/{campaign}/items", status=404, code="REVIEW_UNKNOWN"
    )


def test_who_may_open(api: Api, today: dt.date) -> None:
    """R-CNIL-20: operators open over any organisation or all; a partner admin over their own
    only; managers never. Bad requests are refused before anything is written."""
    api.refused(
        ADMIN,
        "POST",
        "/v1/reviews",
        {"organisations": ["habitat-93"], "due_on": due(today)},
        status=403,
        code="OTHER_ORGANISATION",
    )
    api.refused(
        MANAGER,
        "POST",
        "/v1/reviews",
        {"organisations": [MAIRIE_CODE], "due_on": due(today)},
        status=403,
        code="NOT_PERMITTED",
    )
    api.refused(
        ADMIN,
        "POST",
        "/v1/reviews",
        {"all_organisations": True, "due_on": due(today)},
        status=403,
        code="OTHER_ORGANISATION",
    )
    api.refused(
        ADMIN,
        "POST",
        "/v1/reviews",
        {"organisations": [MAIRIE_CODE], "due_on": due(today, -1)},
        status=400,
        code="RETROACTIVE_DATE",
    )
    api.refused(
        ADMIN, "POST", "/v1/reviews", {"due_on": due(today)}, status=400, code="REVIEW_SCOPE"
    )
    api.refused(
        OPERATOR,
        "POST",
        "/v1/reviews",
        {"organisations": ["nulle-part"], "due_on": due(today)},
        status=404,
        code="UNKNOWN_ORGANISATION",
    )
    out = api.ok(
        OPERATOR, "POST", "/v1/reviews", {"all_organisations": True, "due_on": due(today)}, 201
    )
    assert len(out["campaign"]["organisations"]) == 5
    # mairie 3, habitat-93 1 (helene), sip-lyon 2, asso-entraide 2, ccas-grand-paris 1
    assert out["items"] == 9
    # ines.moreau manages both of sip-lyon's groups and is its only partner admin: her own
    # membership has nobody to review it (R-CNIL-22), as nadia.benali's at ccas-grand-paris.
    assert out["unassigned"] == 3


def test_reviewers_see_only_their_items(api: Api, today: dt.date) -> None:
    """R-CNIL-23: a reviewer acting on another's item is told it does not exist; a user with
    no item does not see the campaign."""
    campaign = open_review(api, today)["campaign"]["id"]
    alices = items_of(api, ADMIN, campaign)
    path = f"/v1/reviews/{campaign}/items/{alices[0]['id']}/decision"
    api.refused(MANAGER, "POST", path, {"decision": "keep"}, status=404, code="REVIEW_ITEM_UNKNOWN")
    api.refused("chloe.roux", "GET", f"/v1/reviews/{campaign}", status=404, code="REVIEW_UNKNOWN")
    assert api.get("chloe.roux", "/v1/reviews")["campaigns"] == []
    assert [c["id"] for c in api.get(MANAGER, "/v1/reviews")["campaigns"]] == [campaign]
    detail = api.get(MANAGER, f"/v1/reviews/{campaign}")
    assert [p["key"] for p in detail["by_reviewer"]] == [MANAGER]
    assert detail["by_organisation"] == []
    api.refused(MANAGER, "GET", f"/v1/reviews/{campaign}/results", status=403, code="NOT_PERMITTED")


def test_keep_and_remove(api: Api, today: dt.date) -> None:
    """R-CNIL-24, R-CNIL-28: keeping is recorded (no new revision); removing is a detach (a new
    revision, the user loses the group's rights at once), previewable; an item is decided
    once."""
    campaign = open_review(api, today)["campaign"]["id"]
    chloe = items_of(api, MANAGER, campaign)[0]
    path = f"/v1/reviews/{campaign}/items/{chloe['id']}/decision"
    assert api.allowed("chloe.roux", "cdap", "T1")
    before = api.revision()
    preview = api.call(MANAGER, "POST", path + "?dry_run=true", {"decision": "remove"})
    assert preview.status_code == 200, preview.get_json()
    assert api.revision() == before and api.allowed("chloe.roux", "cdap", "T1")
    assert api.audit.events[-1].action == "review.open"  # type: ignore[union-attr]
    out = api.write(MANAGER, "POST", path, {"decision": "remove", "comment": "Partie"})
    assert (out["item"]["outcome"], out["item"]["removed"]) == ("removed", True)
    assert out["item"]["comment"] == "Partie"
    assert not api.allowed("chloe.roux", "cdap", "T1")
    new = [(e.action, e.target) for e in api.audit.events[1:]]  # type: ignore[union-attr]
    assert new == [
        ("group.members.edit", "user:chloe.roux"),
        ("review.decide", f"review:{campaign}"),
    ]
    api.refused(MANAGER, "POST", path, {"decision": "keep"}, status=409, code="REVIEW_ITEM_DECIDED")

    ccas = by_key(items_of(api, ADMIN, campaign))[("bruno.petit", "CCAS")]
    before = api.revision()
    kept = api.ok(
        ADMIN, "POST", f"/v1/reviews/{campaign}/items/{ccas['id']}/decision", {"decision": "keep"}
    )
    assert (kept["item"]["outcome"], kept["item"]["decided_by"]) == ("kept", ADMIN)
    assert kept["revision"] == before == api.revision()
    assert api.audit.events[-1].after["outcome"] == "kept"  # type: ignore[union-attr,index]
    api.refused(
        ADMIN,
        "POST",
        f"/v1/reviews/{campaign}/items/{ccas['id']}/decision",
        {"decision": "maybe"},
        status=400,
        code="VALIDATION_ERROR",
    )

    detail = api.get(ADMIN, f"/v1/reviews/{campaign}")  # R-CNIL-25
    progress = {p["key"]: p for p in detail["by_reviewer"]}
    assert progress[ADMIN] | {"key": None} == {
        "key": None,
        "total": 2,
        "pending": 1,
        "kept": 1,
        "removed": 0,
        "reported": 0,
    }
    assert (progress[MANAGER]["removed"], progress[MANAGER]["pending"]) == (1, 0)
    assert [(p["key"], p["total"], p["pending"]) for p in detail["by_organisation"]] == [
        (MAIRIE_CODE, 3, 1)
    ]


def test_reviewer_replaced_is_refused(api: Api, today: dt.date) -> None:
    """R-CNIL-24: the engine must allow the reviewer now: bruno.petit, no longer a manager
    of chloe.roux's groups, may not decide the item the opening gave him."""
    campaign = open_review(api, today)["campaign"]["id"]
    chloe = items_of(api, MANAGER, campaign)[0]
    for code in ("CCAS-ACCUEIL", "CCAS"):
        api.write(
            ADMIN,
            "PUT",
            f"{MAIRIE}/groups/{code}/manager",
            {"login": "emma.garnier", "replaces": MANAGER},
        )
    api.refused(
        MANAGER,
        "POST",
        f"/v1/reviews/{campaign}/items/{chloe['id']}/decision",
        {"decision": "keep"},
        status=403,
        code="OUTSIDE_PERIMETER",
    )


def test_close_reports_what_is_left(api: Api, today: dt.date) -> None:
    """R-CNIL-26: closing reports what is left unreviewed, removes nothing unless asked; a
    closed campaign changes no more."""
    campaign = open_review(api, today)["campaign"]["id"]
    chloe = items_of(api, MANAGER, campaign)[0]
    api.ok(
        MANAGER,
        "POST",
        f"/v1/reviews/{campaign}/items/{chloe['id']}/decision",
        {"decision": "keep"},
    )
    api.refused(MANAGER, "POST", f"/v1/reviews/{campaign}/close", status=403, code="NOT_PERMITTED")
    before = api.revision()
    out = api.ok(ADMIN, "POST", f"/v1/reviews/{campaign}/close")
    assert (out["reported"], out["removed"], out["campaign"]["status"]) == (2, 0, "closed")
    assert api.revision() == before and api.allowed("bruno.petit", "cdap", "T18")
    results = api.get(ADMIN, f"/v1/reviews/{campaign}/results")["items"]
    assert sorted((i["login"], i["group"], i["outcome"]) for i in results) == [
        ("bruno.petit", "CCAS", "reported"),
        ("bruno.petit", "CCAS-INSTRUCTION", "reported"),
        ("chloe.roux", "CCAS-ACCUEIL", "kept"),
    ]
    api.refused(ADMIN, "POST", f"/v1/reviews/{campaign}/close", status=409, code="REVIEW_CLOSED")
    alices = items_of(api, ADMIN, campaign)
    api.refused(
        ADMIN,
        "POST",
        f"/v1/reviews/{campaign}/items/{alices[0]['id']}/decision",
        {"decision": "keep"},
        status=409,
        code="REVIEW_CLOSED",
    )


def test_close_removes_unreviewed_when_asked(api: Api, today: dt.date) -> None:
    """R-CNIL-26: opened with remove_unreviewed, the closing detaches what is left (a new
    revision, audited per membership); results as JSON and CSV (R-CNIL-27)."""
    campaign = open_review(api, today, remove_unreviewed=True)["campaign"]["id"]
    chloe = items_of(api, MANAGER, campaign)[0]
    api.ok(
        MANAGER,
        "POST",
        f"/v1/reviews/{campaign}/items/{chloe['id']}/decision",
        {"decision": "keep", "comment": "=cmd()"},
    )
    out = api.write(ADMIN, "POST", f"/v1/reviews/{campaign}/close")
    assert (out["reported"], out["removed"]) == (2, 2)
    assert not api.allowed("bruno.petit", "cdap")
    assert api.allowed("chloe.roux", "cdap", "T1")
    actions = sorted(e.action for e in api.audit.events)  # type: ignore[union-attr]
    assert actions.count("review.close") == 3  # two detaches, the closing
    r = api.call(ADMIN, "GET", f"/v1/reviews/{campaign}/results", query={"format": "csv"})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [(row["utilisateur"], row["groupe"], row["issue"], row["detache"]) for row in rows] == [
        ("bruno.petit", "CCAS", "reported", "oui"),
        ("bruno.petit", "CCAS-INSTRUCTION", "reported", "oui"),
        ("chloe.roux", "CCAS-ACCUEIL", "kept", "non"),
    ]
    assert rows[2]["commentaire"] == "'=cmd()"  # never a formula in a spreadsheet
    assert rows[0]["droits"] == "adonis:acces cdap:T1 cdap:T18"


def test_close_due_closes_what_is_past_its_due_date(api: Api, today: dt.date) -> None:
    """R-CNIL-26: at the due date, the campaigns past it are closed as their opener: the rest
    reported, and removed when asked; a campaign not yet due stays open."""
    late = open_review(api, today, remove_unreviewed=True)["campaign"]["id"]
    on_time = open_review(api, today)["campaign"]["id"]
    app = api.client.application
    with sessionmaker(services(app).db).begin() as session:
        session.get_one(ReviewCampaign, late).due_on = today - dt.timedelta(days=1)
    assert api.get(ADMIN, f"/v1/reviews/{late}")["campaign"]["status"] == "overdue"
    closed = close_due(services(app).admin)
    assert [(c, getattr(out, "reported", None)) for c, out in closed] == [(late, 3)]
    assert api.get(ADMIN, f"/v1/reviews/{late}")["campaign"]["closed_by"] == ADMIN
    assert api.get(ADMIN, f"/v1/reviews/{on_time}")["campaign"]["status"] == "open"
    assert not api.allowed("chloe.roux", "cdap", "T1")  # removed at the closing
    assert close_due(services(app).admin) == []
