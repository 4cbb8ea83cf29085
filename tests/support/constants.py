"""What many tests share: the secret and API key the test apps are given, the demo's
organisations and actors, and the type of conftest's ``make_app`` fixture."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from pdp.records.decision_log import MemoryLog

SECRET = "s" * 40  # the jwt_secret the tests give make_app
API_KEY_ID = "000000000001"
API_KEY = f"pdp_{API_KEY_ID}_{'t' * 43}"  # the tests' API key (support.databases.add_test_key)
API_HEADERS = {"X-Api-Key": API_KEY}

# The demo's organisations (pdp.services.demo), as administration API paths.
MAIRIE_CODE = "mairie-montreuil"  # the town hall, the richest tree of the demo
MAIRIE = f"/v1/organisations/{MAIRIE_CODE}"
ASSO = "/v1/organisations/asso-entraide"
HABITAT = "/v1/organisations/habitat-93"
GP = "/v1/organisations/ccas-grand-paris"
CONVENTION = "CONV-mairie-montreuil-931"  # mairie-montreuil's convention with the Caf 931

# The demo's actors.
OPERATOR = "op.caf751"  # a Caf operator
PARTNER_ADMIN = "alice.martin"  # the partner admin of mairie-montreuil
MANAGER = "bruno.petit"  # the manager of every CCAS group of mairie-montreuil

MakeApp = Callable[..., tuple[Flask, MemoryLog]]  # conftest's make_app fixture
