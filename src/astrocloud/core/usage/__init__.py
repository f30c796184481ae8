"""The usage log."""
