"""The service layer: decisions, administration, auditing, API keys, tokens."""
