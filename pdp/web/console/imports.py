"""Console: "Importer des utilisateurs": a CSV of users and their groups, previewed line by line,
then applied as one write (``pdp.services.admin.user_imports``)."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from werkzeug.wrappers import Response

from pdp.core.errors import BadRequest, PdpError
from pdp.engine.actions import Action
from pdp.engine.rules import Target
from pdp.services.admin import user_imports
from pdp.services.admin.user_imports import COLUMNS, OPTIONAL
from pdp.web.console.blueprint import bp
from pdp.web.console.common import actor, form_page
from pdp.web.container import services

IMPORT = "/organisations/<org>/utilisateurs/import"


def _form(org: str, **context: object) -> Response:
    return form_page("user_import.html", org=org, columns=COLUMNS, optional=OPTIONAL, **context)  # type: ignore[arg-type]


@bp.get(IMPORT)
def import_form(org: str) -> Response:
    """The upload form (user.create is needed to import)."""
    services().admin.require(actor(), Action.USER_CREATE, Target("organisation", org))
    return _form(org)


@bp.post(IMPORT)
def import_preview(org: str) -> Response:
    """What each line would do; the file kept in the page to apply it."""
    upload = request.files.get("fichier")
    raw = upload.read() if upload is not None else request.form.get("csv", "").encode()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _form(org, error=BadRequest("Le fichier n'est pas en UTF-8.", "IMPORT_FORMAT"))
    try:
        report = user_imports.import_users(services().admin, actor(), org, text, apply=False)
    except PdpError as exc:
        return _form(org, error=exc)
    return _form(org, report=report, csv=text)


@bp.post(f"{IMPORT}/appliquer")
def import_apply(org: str) -> Response:
    """Apply the previewed file: one write, or nothing."""
    text = request.form.get("csv", "")
    try:
        report = user_imports.import_users(services().admin, actor(), org, text, apply=True)
    except PdpError as exc:
        return _form(org, error=exc, csv=text)
    flash(
        f"Import appliqué : {report.created} utilisateur(s) créé(s), "
        f"{report.attached} rattachement(s).",
        "success",
    )
    return redirect(url_for("console.users_list", org=org))
