"""The ceiling of the HTTP stack: a bare Flask endpoint under pdp's own gunicorn settings.

``python -m bench.bare --bind 127.0.0.1:8001 --workers 4`` serves ``POST /v1/check`` answering a
constant JSON document of the same shape as pdp's answer, without reading the body, deciding or
logging anything: what Flask, Werkzeug and gunicorn cost per request on this machine. The HTTP
benchmark loads it with the same requests and the same connections as ``pdp serve``.
"""

from __future__ import annotations

import argparse
import sys

from flask import Flask, Response, jsonify

from pdp.web.server import PdpServer, gunicorn_options

ANSWER = {
    "allowed": True,
    "reason": {"code": "ALLOWED", "message": "Accès autorisé."},
    "grants": [{"group": "AGENTS", "service": "cdap", "role": "consultation"}],
    "decision_id": "00000000000000000000000000000000",
    "revision": 1,
    "at": "2026-01-01",
}


def create_bare_app() -> Flask:
    """A Flask app with one constant endpoint (and a health probe for start-up)."""
    app = Flask("bare")

    @app.post("/v1/check")
    def check() -> Response:
        return jsonify(ANSWER)

    @app.get("/healthz")
    def health() -> Response:
        return jsonify({"status": "ok"})

    return app


def main(argv: list[str] | None = None) -> int:
    """Serve the bare app until stopped."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__)
    parser.add_argument("--bind", default="127.0.0.1:8001")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    options = gunicorn_options(args.bind, args.workers) | {"proc_name": "pdp-bare"}
    PdpServer(create_bare_app(), options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
