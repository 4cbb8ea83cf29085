"""The service catalogue (R-CAT), for front-ends (API key) and signed-in users (JWT)."""

from __future__ import annotations

from flask import Blueprint, Response

from pdp.services.catalogue import CatalogueOut, describe
from pdp.web.api.admin_common import answer
from pdp.web.api.openapi import route
from pdp.web.container import services

bp = Blueprint("catalogue", __name__, url_prefix="/v1")


@route(
    bp,
    "GET",
    "/catalogue",
    summary="The services, their roles, which are consulted per Caf, which make system groups",
    response=CatalogueOut,
    errors=(401, 503),
    auth=True,
    api_key=True,
)
def catalogue() -> Response:
    """The catalogue the service runs with (policies/catalogue.yaml or PDP_CATALOGUE_PATH)."""
    return answer(describe(services().admin.catalogue))
