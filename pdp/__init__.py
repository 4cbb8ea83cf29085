"""pdp: the access decision point behind the Caf partner portal."""

from pdp.app import create_app

__all__ = ["create_app"]
