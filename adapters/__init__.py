"""Adapters between pdp and the outside: SQL storage (``pdp.adapters.sql``) and the PostgreSQL
watcher (``pdp.adapters.watcher``)."""
