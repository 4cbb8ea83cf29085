"""The decision engine: a fast index over the domain store, with Casbin as its reference."""
