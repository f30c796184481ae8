"""The public channel."""
