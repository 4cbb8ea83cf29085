"""Access reviews (revue des habilitations, R-CNIL-20..29): campaigns, their items, the
reviewers' decisions, the closing and the results. One module per verb family:
``opening`` (what a campaign reviews and who reviews it), ``campaigns`` (open, close),
``decisions`` (keep, remove), ``reads`` (listings, progress, results as CSV and JSON)."""
