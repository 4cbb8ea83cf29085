"""Who is calling and which request this is, for the decision log and the audit trail.

Set at the start of each HTTP request, before the view runs, by ``begin`` (from a
``before_request`` hook of ``pdp.web.app.create_app``, or the decision endpoints' lean path,
``pdp.web.api.hot_path``): the request id, and the client's address; ``pdp.web.api.guard.install``
then names the client by the API key or the login that authenticated it. Outside a request (the
CLI) they keep their defaults.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from random import getrandbits

request_id: ContextVar[str | None] = ContextVar("pdp_request_id", default=None)
client: ContextVar[str] = ContextVar("pdp_client", default="cli")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def accept_request_id(header: str | None) -> str:
    """The caller's ``X-Request-Id`` if it is a sane token, else a new random one."""
    if header and _REQUEST_ID.match(header):
        return header
    return f"{getrandbits(96):024x}"


def begin(header: str | None, address: str | None) -> str:
    """A request starts: its id (``accept_request_id``), returned, and its caller's address."""
    found = accept_request_id(header)
    request_id.set(found)
    client.set(address or "unknown")
    return found


def end() -> None:
    """A request ended: the worker's thread keeps its context, so a log line between two
    requests must not carry the last one's id (``pdp.observability.logs``)."""
    request_id.set(None)
