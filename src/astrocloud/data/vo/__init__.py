"""IVOA protocol services of the Data channel."""
