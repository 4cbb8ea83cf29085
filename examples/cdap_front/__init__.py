"""A tiny Cdap-like front-end guarded by the decision point (see examples/README.md)."""
