"""A partner's CSV of users and their groups (fiches 1 and 4 in bulk), on every driver: the
preview says what each line would do and writes nothing; applying is one write that does exactly
that, or nothing if a line is refused; every line is checked with the actor's rights (R-ADM-4),
as the API checks one user at a time (R-USR-1, R-MEM-1)."""

from __future__ import annotations

from typing import Any

import pytest

from pdp.records.audit_trail import AuditReader
from pdp.services.admin.user_imports import ImportReport
from pdp.web.container import services

from support.actors import Api
from support.constants import MAIRIE, MANAGER, PARTNER_ADMIN, SECRET, MakeApp

HEADER = "login,first_name,last_name,email,groups\n"
GOOD = (
    HEADER
    + "ines.roy,Inès,Roy,ines.roy@montreuil.fr,CCAS-ACCUEIL\n"
    + "jean.bon,Jean,Bon,jean.bon@montreuil.fr,CCAS-ACCUEIL;CCAS-INSTRUCTION\n"
    + "chloe.roux,Chloé,Roux,chloe.roux@montreuil.fr,CCAS-ACCUEIL;CCAS-INSTRUCTION\n"
)


@pytest.fixture
def api(make_app: MakeApp) -> Api:
    app, log = make_app(jwt_secret=SECRET)
    return Api(app.test_client(), AuditReader(services(app).db), log)


def outcomes(report: dict[str, Any]) -> list[tuple[int, str, str, list[str], str | None]]:
    return [(x["line"], x["login"], x["outcome"], x["groups"], x["code"]) for x in report["lines"]]


def test_the_preview_says_what_each_line_would_do_and_writes_nothing(api: Api) -> None:
    before = api.revision()
    r = api.call(PARTNER_ADMIN, "POST", f"{MAIRIE}/imports", {"csv": GOOD})
    assert r.status_code == 200, r.get_json()
    report = r.get_json()
    ImportReport.model_validate(report)
    assert outcomes(report) == [
        (2, "ines.roy", "create", ["CCAS-ACCUEIL"], None),
        (3, "jean.bon", "create", ["CCAS-ACCUEIL", "CCAS-INSTRUCTION"], None),
        # chloe.roux is already in CCAS-ACCUEIL: only the other group is added.
        (4, "chloe.roux", "attach", ["CCAS-INSTRUCTION"], None),
    ]
    assert (report["applied"], report["revision"], report["created"], report["attached"]) == (
        False,
        None,
        2,
        4,
    )
    assert api.revision() == before
    api.refused(PARTNER_ADMIN, "GET", f"{MAIRIE}/users/ines.roy", status=404, code="UNKNOWN_USER")


def test_applying_is_one_write_that_does_what_the_preview_said_R_USR_2(api: Api) -> None:
    preview = api.ok(PARTNER_ADMIN, "POST", f"{MAIRIE}/imports", {"csv": GOOD})
    done = api.write(PARTNER_ADMIN, "POST", f"{MAIRIE}/imports", {"csv": GOOD, "apply": True})
    assert done["applied"] is True
    assert outcomes(done) == outcomes(preview)
    assert api.allowed("jean.bon", "cdap", "T18")  # through CCAS-INSTRUCTION
    assert api.allowed("ines.roy", "cdap", "T1") and not api.allowed("ines.roy", "cdap", "T18")
    # Again: nothing left to do.
    again = api.ok(PARTNER_ADMIN, "POST", f"{MAIRIE}/imports", {"csv": GOOD})
    assert [x["outcome"] for x in again["lines"]] == ["unchanged"] * 3


def test_a_refused_line_refuses_the_whole_file_R_USR_1_R_MEM_1(api: Api) -> None:
    bad = (
        HEADER
        + "ines.roy,Inès,Roy,ines.roy@montreuil.fr,CCAS-ACCUEIL\n"
        + "gilles.bernard,Gilles,Bernard,g@x.fr,CCAS\n"  # another organisation's login
        + "kim.lee,Kim,Lee,kim.lee@montreuil.fr,NOPE\n"  # unknown group
        + "lou.vian,Lou,Vian,lou.vian@montreuil.fr,CCAS-ARCHIVES\n"  # closed group
        + "bad login,X,Y,x@y.fr,CCAS\n"  # a login with a space
    )
    preview = api.ok(PARTNER_ADMIN, "POST", f"{MAIRIE}/imports", {"csv": bad})
    assert [(x["line"], x["outcome"], x["code"]) for x in preview["lines"]] == [
        (2, "create", None),
        (3, "refused", "LOGIN_TAKEN"),
        (4, "refused", "UNKNOWN_GROUP"),
        (5, "refused", "GROUP_NOT_OPEN"),
        (6, "refused", "VALIDATION_ERROR"),
    ]
    out = api.refused(
        PARTNER_ADMIN,
        "POST",
        f"{MAIRIE}/imports",
        {"csv": bad, "apply": True},
        status=409,
        code="IMPORT_REFUSED",
    )
    assert out["error"]["details"]["refused"] == 4
    api.refused(PARTNER_ADMIN, "GET", f"{MAIRIE}/users/ines.roy", status=404, code="UNKNOWN_USER")


def test_a_manager_imports_only_into_their_perimeter_R_ADM_4(api: Api) -> None:
    csv = HEADER + "ines.roy,Inès,Roy,ines.roy@montreuil.fr,CCAS-ACCUEIL\n"
    done = api.write(MANAGER, "POST", f"{MAIRIE}/imports", {"csv": csv, "apply": True})
    assert done["created"] == 1
    # gilles.bernard manages habitat-93's groups, none of mairie-montreuil's.
    out = api.call("gilles.bernard", "POST", f"{MAIRIE}/imports", {"csv": csv})
    assert out.status_code == 403


@pytest.mark.parametrize(
    "text",
    [
        "login,first_name\nx,y\n",  # columns missing
        HEADER,  # no line
        "login,first_name,last_name,email,groups,colour\nx,y,z,e@x.fr,CCAS,red\n",  # unknown
    ],
)
def test_an_unreadable_file_is_400(api: Api, text: str) -> None:
    api.refused(
        PARTNER_ADMIN, "POST", f"{MAIRIE}/imports", {"csv": text}, status=400, code="IMPORT_FORMAT"
    )


@pytest.mark.parametrize(
    "text",
    [
        HEADER + "a\rb,c,d,e@x.fr,CCAS\n",  # a lone carriage return in a cell
        HEADER + "x,y,z,e@x.fr," + "G" * 200_000 + "\n",  # a cell over the csv module's limit
        HEADER + '"x\n,y,z,e@x.fr,CCAS',  # a quote never closed
    ],
)
def test_a_malformed_csv_is_answered_never_a_500(api: Api, text: str) -> None:
    out = api.call(PARTNER_ADMIN, "POST", f"{MAIRIE}/imports", {"csv": text})
    assert out.status_code in (200, 400), out.get_json()
    if out.status_code == 400:
        assert out.get_json()["error"]["code"] in ("IMPORT_FORMAT", "VALIDATION_ERROR")


def test_a_line_with_too_many_cells_is_refused_alone(api: Api) -> None:
    text = HEADER + "kim.lee,Kim,Lee,kim.lee@montreuil.fr,CCAS,extra\n"
    report = api.ok(PARTNER_ADMIN, "POST", f"{MAIRIE}/imports", {"csv": text})
    assert [(x["outcome"], x["code"]) for x in report["lines"]] == [("refused", "IMPORT_FORMAT")]
