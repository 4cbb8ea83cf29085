"""What the service keeps: the decision log, the audit trail, its checkpoints."""
