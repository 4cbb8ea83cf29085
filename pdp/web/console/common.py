"""What every console view uses: the services, the signed-in actor, the admin check, pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, g, make_response, render_template, request

from pdp.core.errors import PdpError
from pdp.engine.actions import Action
from pdp.services.admin.preview import Preview, PreviewReady, previewing
from pdp.web.container import services


def actor() -> str:
    """The signed-in user's login (the pages that need none never call this)."""
    login: str = g.console_login
    return login


def allowed(action: Action, target: str) -> bool:
    """Whether the signed-in user may do ``action`` on ``target`` (R-ADM-7): what to show."""
    return services().admin.check(actor(), action, target).allowed


def consequences(write: Callable[[], object]) -> Preview | PdpError | None:
    """What ``write`` would do, written by nobody (its preview, see
    ``pdp.services.admin.preview``), for a confirmation page: the preview, or the refusal the
    write would meet (shown before "Oui" too)."""
    token = previewing.set(True)
    try:
        write()
    except PreviewReady as ready:
        return ready.preview
    except PdpError as refused:
        return refused
    finally:
        previewing.reset(token)
    return None


def page(template: str, status: int = 200, **context: Any) -> Response:
    """Render a console template with ``status``."""
    response = make_response(render_template(f"console/{template}", **context), status)
    return response


def form_page(
    template: str,
    status: int = 200,
    error: PdpError | None = None,
    field: str | None = None,
    **context: Any,
) -> Response:
    """A form page, the values kept; a service refusal (``error``, with its status) is shown
    in the summary and next to ``field``, the form field it is about (if any)."""
    errors: dict[str, str] = context.pop("errors", {})
    if error is not None:
        status = error.status
        if field is not None:
            errors.setdefault(field, error.message)
    return page(
        template,
        status,
        values=context.pop("values", request.form),
        errors=errors,
        error=error.message if error is not None else None,
        **context,
    )
