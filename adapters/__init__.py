"""Adapters between pdp and the outside: SQL storage (``adapters.sql``) and Casbin feeding."""
