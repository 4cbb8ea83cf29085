"""The administration verbs (the guide's 16 fiches pratiques), one module per area."""
