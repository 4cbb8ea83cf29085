"""Adapters between pdp and the outside: SQL storage (``pdp.adapters.sql``) and Casbin feeding."""
