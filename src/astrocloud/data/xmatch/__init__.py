"""Positional cross-identification of a table with a catalog (the Data channel)."""
