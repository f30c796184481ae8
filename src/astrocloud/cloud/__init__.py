"""The cloud channel."""
