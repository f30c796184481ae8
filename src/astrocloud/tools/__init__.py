"""The tools channel."""
