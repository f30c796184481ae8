"""The observation channel."""
