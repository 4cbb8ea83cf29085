"""Who may use what, as a document (R-ADM-8): ``GET /v1/organisations/<org>/access``.

A streamed answer: the view authorises the reader and judges the query, then returns a
generator of chunks (``pdp.services.access``), so an error is a plain JSON error before the
first byte and the document itself is never held whole in memory.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from flask import Blueprint, Response, request
from pydantic import BaseModel, ConfigDict, Field

from pdp.core.fields import Day, MinRevision
from pdp.services.access import MEDIA_TYPES
from pdp.web.api.admin_common import AUTH_ERRORS, actor
from pdp.web.api.openapi import route
from pdp.web.container import services

bp = Blueprint("access", __name__, url_prefix="/v1")


class AccessQuery(BaseModel):
    """The day (default today) and the format: ``json`` (JSON Lines, the default) or ``csv``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    at: Day | None = None
    fmt: Literal["json", "csv"] = Field("json", alias="format")
    min_revision: MinRevision = None


class AccessLine(BaseModel):
    """One line of the document (a JSON Lines object, or a CSV row under the header line
    ``organisation,login,service,role,caf,source,group,at``): the user may use the service
    with the role for the Caf on the day, through the group or (``source`` "afas_profile",
    ``group`` null or empty) an Afas profile."""

    organisation: str
    login: str
    service: str
    role: str
    caf: str
    source: Literal["group", "afas_profile"]
    group: str | None
    at: dt.date


@route(
    bp,
    "GET",
    "/organisations/<org>/access",
    summary="Who may use what: every user's rights on a day (service, role, Caf, group or Afas "
    "profile), streamed as JSON Lines or CSV (operators; partner admins: their organisation)",
    response=AccessLine,
    query=AccessQuery,
    errors=AUTH_ERRORS,
    auth=True,
    content=("application/x-ndjson", "text/csv"),
)
def access(org: str) -> Response:
    """R-ADM-8: exactly what checks answer on the day, one line per right."""
    who = actor()
    q = AccessQuery.model_validate(request.args.to_dict())
    document = services().access.read(
        who, org, q.at, q.min_revision, services().settings.min_revision_wait
    )
    extension = "csv" if q.fmt == "csv" else "jsonl"
    return Response(
        document.chunks(q.fmt),
        mimetype=MEDIA_TYPES[q.fmt],
        headers={
            "Content-Disposition": (
                f'attachment; filename="access-{org}-{document.day.isoformat()}.{extension}"'
            ),
            "X-Policy-Revision": str(document.revision),
        },
    )
