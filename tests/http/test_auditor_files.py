"""Who opened a family's file, which tab, under which right, granted by whom (R-DEC-1, R-DEC-3,
R-ADM-7): a check may name the allocataire number of the file it is about. The number never
decides; it is logged as a keyed pseudonym (never in clear), and the auditors' decision query
finds every check about that file by it. Over the demo with a real decision log (the
``portal`` fixture of tests/http/conftest.py)."""

from __future__ import annotations

import pytest

from pdp.core.masking import Masker

from support.auditor import Portal
from support.constants import OPERATOR

FAMILY = "1234567"


def test_r_dec_3_checks_about_a_file_are_found_by_its_number(portal: Portal) -> None:
    tab = portal.check(user="bruno.petit", service="cdap", feature="paiements", allocataire=FAMILY)
    plain = portal.check(user="bruno.petit", service="cdap", feature="paiements")
    other = portal.check(user="chloe.roux", service="cdap", feature="rsa", allocataire="7654321")
    # The number never decides: the same answer with or without it.
    assert (tab["allowed"], tab["reason"]) == (plain["allowed"], plain["reason"])

    about = portal.decisions(allocataire=FAMILY)
    assert [d["decision_id"] for d in about] == [tab["decision_id"]]
    logged = about[0]
    # Which tab, under which right (the grant path), never the number in clear.
    assert (logged["user"], logged["feature"], logged["allowed"]) == (
        "bruno.petit",
        "paiements",
        True,
    )
    assert {g[2] for g in logged["grants"]} == {"T18"}
    assert logged["allocataire"] == Masker().pseudonym(FAMILY)
    assert FAMILY not in str(portal.decisions())
    assert [d["decision_id"] for d in portal.decisions(allocataire="7654321")] == [
        other["decision_id"]
    ]
    # Granted by whom: the explanation of that decision names who gave the role, and when.
    explained = portal.decision(tab["decision_id"])
    assert explained["explanation"] and all(
        step["source"] == "group" for step in explained["explanation"]
    )


@pytest.mark.parametrize("number", ["12a4", "", "12345678901234", " 123"])
def test_r_dec_1_a_malformed_number_is_refused(portal: Portal, number: str) -> None:
    r = portal.call(
        None,
        "POST",
        "/v1/check",
        body={"user": "bruno.petit", "service": "cdap", "allocataire": number},
    )
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "VALIDATION_ERROR"
    r = portal.call(OPERATOR, "GET", "/v1/decisions", query={"allocataire": number or "x"})
    assert r.status_code == 400
