"""HTTP entry points: thin views that parse, call a verb, and serialise."""
