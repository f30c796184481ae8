"""Fixtures of the Data channel's tests: the CLI on a home of its own comes from the kernel's
CLI tests."""

from tests.core.test_cli import cli, home, installed  # noqa: F401 - fixtures
