"""The ``pdp`` console script: the server's command line, or a clear word when only the client
(``pip install pdp``) is installed."""

from __future__ import annotations

import sys


def main() -> None:
    """Runs ``pdp.cli.main``; exits 2 with the install command if the server extra is missing."""
    try:
        from pdp.cli import main as cli_main
    except ModuleNotFoundError as exc:
        print(
            f"pdp: the decision service needs the 'server' extra ({exc.name} is missing): "
            "pip install 'caf-pdp[server]'",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    cli_main()
