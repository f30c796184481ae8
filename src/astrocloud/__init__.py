"""AstroCloud: one platform for the whole life of astronomical observations."""

__version__ = "0.1.0"
