"""The data channel."""
