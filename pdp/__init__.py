"""pdp: the access decision point behind the Caf partner portal (app factory: pdp.web.app)."""
