"""The service's own logs (not the decision log): plain text, or one JSON object per line.

``PDP_LOG_FORMAT=json`` (the default of ``pdp serve`` in production) writes each record as
``{"ts", "level", "logger", "message", "request_id", "client", "pid"}``, plus ``exception``
when there is one: what a log shipper indexes without parsing. The request id is the one
answered in ``X-Request-Id`` and written in the decision log, so that a log line, an answer and a
decision can be matched. Nothing here reads a request's headers: a key or a token reaches a log
only if some code puts it in a message, which none does.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any

import orjson

from pdp.core import context

TEXT_FORMAT = "%(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; the request's id and client from ``pdp.core.context``."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (without the newline)."""
        request_id = context.request_id.get()
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id,
            # Outside a request the context keeps the last caller: only name it within one.
            "client": context.client.get() if request_id is not None else None,
            "pid": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``text`` or ``json``."""
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(log_format: str) -> None:
    """Make the root logger write to standard error in ``log_format`` (text or json)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)


def gunicorn_logconfig(log_format: str) -> dict[str, Any] | None:
    """gunicorn's ``logconfig_dict``: its error log, and every other logger, in JSON on
    standard error; None (gunicorn's own format) for text."""
    if log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {
            "pdp": {"level": "INFO", "handlers": [], "propagate": True},
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        },
    }
