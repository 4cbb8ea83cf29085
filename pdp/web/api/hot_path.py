"""The decision endpoints' lean path: ``POST /v1/check`` and ``POST /v1/check/batch`` answered
as a plain WSGI call, without Flask's request, context and response objects.

Front-ends call these two endpoints for almost every request the service gets, and Flask's own
machinery (a request context, the URL map, nine hooks, a response object) cost as much as
everything pdp does for a check (bench/README.md, "Where the time went"). This path keeps
every guarantee of the Flask app by calling the same definitions, in the same order:

1. the request id and the caller's address (``pdp.core.context.begin``);
2. authentication by API key (``ClientRegistry.authenticate``, as ``pdp.web.api.guard``);
3. the rate limit (``pdp.web.api.guard.count``);
4. the body's size limit (``pdp.web.api.decisions.read_sized``);
5. validation, the front-end's services, read-your-writes, the decision and its log entry, the
   answer (``answer_check`` / ``answer_batch``, which the Flask views call too);
6. errors as JSON with their stable codes (``pdp.web.api.errors.failure``);
7. the request's duration in ``pdp_http_request_duration_seconds`` under the views' endpoint
   names (``pdp.observability.metrics.observe_request``).

Whatever it does not take goes to Flask unchanged: another path or method, a query string
(``?dry_run``, text to check for control characters), a body without Content-Length (chunked),
and every request when tracing is on (its spans are Flask hooks: ``pdp.observability.tracing``).
``tests/http/test_hot_path.py`` compares both paths answer for answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.http import HTTP_STATUS_CODES

from pdp.core import context
from pdp.observability.metrics import observe_request
from pdp.services.api_keys import ApiClient
from pdp.web.api.decisions import answer_batch, answer_check, read_sized
from pdp.web.api.errors import failure
from pdp.web.api.guard import count
from pdp.web.api.jsonio import encode
from pdp.web.container import Services, services

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

Answer = Callable[[Services, ApiClient | None, bytes], dict[str, Any]]

# Path → (the view's endpoint name, for the metrics; the answer).
ROUTES: dict[str, tuple[str, Answer]] = {
    "/v1/check": ("decisions.check", answer_check),
    "/v1/check/batch": ("decisions.check_batch", answer_batch),
}
_STATUS = {code: f"{code} {phrase.upper()}" for code, phrase in HTTP_STATUS_CODES.items()}
_JSON = ("Content-Type", "application/json")


class HotPath:
    """WSGI middleware answering the decision endpoints itself, and passing on the rest."""

    def __init__(self, flask_app: Flask, app: WSGIApplication) -> None:
        self.flask_app = flask_app
        self.app = app
        self._services: Services | None = None  # installed after the middleware is built

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        route = ROUTES.get(environ.get("PATH_INFO", ""))
        length = environ.get("CONTENT_LENGTH")
        if (
            route is None
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("QUERY_STRING")
            or not length
            or not length.isdigit()
        ):
            return self.app(environ, start_response)
        found = self._services
        if found is None:
            found = self._services = services(self.flask_app)
        started = time.perf_counter()
        endpoint, answer = route
        request_id = context.begin(environ.get("HTTP_X_REQUEST_ID"), environ.get("REMOTE_ADDR"))
        headers = [_JSON, ("X-Request-Id", request_id)]
        try:
            caller = found.api_keys.authenticate(environ.get("HTTP_X_API_KEY"))
            context.client.set(caller.name)
            if found.limiter is not None:
                count(found.limiter, caller, None, environ.get("REMOTE_ADDR"))
            data = read_sized(environ["wsgi.input"], int(length), found.settings.max_body_bytes)
            status, body = 200, encode(answer(found, caller, data))
        except Exception as exc:  # every error answers JSON, as the app's handlers do
            status, document, extra = failure(exc)
            body = encode(document)
            headers.extend(extra)
        finally:
            context.end()
        headers.append(("Content-Length", str(len(body))))
        start_response(_STATUS[status], headers)
        observe_request(endpoint, status, started)
        return [body]


def install(app: Flask) -> None:
    """Put the lean path in front of ``app``'s WSGI callable (inside the proxy's trust:
    install it before ``pdp.web.proxy_trust.trust_forwarded``)."""
    app.wsgi_app = HotPath(app, app.wsgi_app)  # type: ignore[method-assign]
