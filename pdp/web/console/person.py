"""For operators: "Dossier d'une personne", a person's file (GDPR art. 15, R-CNIL-15) downloaded
from the console: the same document as ``GET /v1/users/<login>/file``, authorised the same way
(``log.read`` on the platform, logged) before anything of it is read, then streamed."""

from __future__ import annotations

from flask import request
from werkzeug.wrappers import Response

from pdp.core.errors import PdpError
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.services.person_file import MEDIA_TYPE
from pdp.web.console.blueprint import bp
from pdp.web.console.common import actor, form_page
from pdp.web.container import services

PERSONS = "/personnes"


@bp.get(PERSONS)
def person_file() -> Response:
    """The form (an identifier); with ``?login=``, the file as a download, or the refusal on
    the form (an unknown identifier: 404, kept filled)."""
    services().admin.require(actor(), Action.LOG_READ, Target("platform"))
    login = request.args.get("login", "").strip()
    if not login:
        return form_page("person_file.html", values={})
    try:
        found = services().persons.read(actor(), login)
    except PdpError as exc:
        return form_page("person_file.html", error=exc, field="login", values={"login": login})
    return Response(
        found.chunks(),
        mimetype=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )
