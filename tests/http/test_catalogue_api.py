"""``GET /v1/catalogue`` (R-CAT): the catalogue the service runs with, for a front-end's API key
or a signed-in user's token, compared with the YAML file read on its own."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from flask import Flask

from pdp.policies import CATALOGUE_PATH
from pdp.services.catalogue import CatalogueOut

from support.actors import Api
from support.constants import API_HEADERS, PARTNER_ADMIN, SECRET, MakeApp


@pytest.fixture
def app(make_app: MakeApp) -> Flask:
    app, _ = make_app(jwt_secret=SECRET)
    return app


def expected() -> list[dict[str, Any]]:
    """The shipped file's services, as the API should describe them (R-CAT-1, R-GRP-3), with
    their features and what each role opens."""
    data = yaml.safe_load(CATALOGUE_PATH.read_text(encoding="utf-8"))["services"]
    return [
        {
            "name": name,
            "label": spec.get("label", name),
            "former_names": spec.get("former_names", []),
            "per_caf": spec.get("per_caf", False),
            "roles": spec["roles"],
            "user_profiles": spec.get("user_profiles", []),
            "system_groups": spec.get("system_groups", []),
            "features": spec.get("features", []),
            "opens": spec.get("opens", {}),
        }
        for name, spec in sorted(data.items())
    ]


def test_a_front_end_reads_the_catalogue_with_its_key(app: Flask) -> None:
    r = app.test_client().get("/v1/catalogue", headers=API_HEADERS)
    assert r.status_code == 200, r.get_json()
    CatalogueOut.model_validate(r.get_json())
    assert r.get_json()["services"] == expected()


def test_a_signed_in_user_reads_it_too(app: Flask) -> None:
    body = Api(app.test_client()).get(PARTNER_ADMIN, "/v1/catalogue")
    assert body["services"] == expected()
    bailleur = next(s for s in body["services"] if s["name"] == "espace_bailleur")
    assert [g["role"] for g in bailleur["system_groups"]] == ["parc_prive", "parc_conventionne"]


def test_anonymous_callers_are_refused(app: Flask) -> None:
    client = app.test_client()
    client.environ_base.pop("HTTP_X_API_KEY")
    r = client.get("/v1/catalogue")
    assert r.status_code == 401
    assert r.get_json()["error"]["code"] == "UNAUTHENTICATED"
