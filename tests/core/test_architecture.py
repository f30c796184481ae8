"""The shape of the code is checked, not hoped for: the import contracts in pyproject.toml hold
(the kernel knows no channel; channels reach each other only through service functions), and
every channel package has the standard layout the application factory relies on."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest
from fastapi import APIRouter

from astrocloud.channels import CHANNELS

REPO_ROOT = Path(__file__).resolve().parents[2]
CHANNEL_PACKAGES = ("observation", "data", "tools", "cloud", "public")


def lint_imports() -> list[str]:
    """The `lint-imports` script of this interpreter's environment."""
    script = Path(sys.executable).with_name("lint-imports")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c",  # importlinter.cli has no __main__ guard
            "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"]


def test_the_import_contracts_in_pyproject_hold():
    result = subprocess.run([*lint_imports(), "--no-cache"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"lint-imports found broken contracts:\n{report}"
    assert "0 broken" in report


def test_every_channel_the_portal_shows_is_one_of_the_standard_packages():
    assert {c.key for c in CHANNELS} <= set(CHANNEL_PACKAGES)


@pytest.mark.parametrize("package", CHANNEL_PACKAGES)
def test_each_channel_package_has_a_routes_module_with_a_router(package):
    module = import_module(f"astrocloud.{package}")
    assert module.__doc__, f"astrocloud.{package} has no docstring saying what it is"
    routes = import_module(f"astrocloud.{package}.routes")
    routers = [name for name, value in vars(routes).items() if isinstance(value, APIRouter)]
    assert routers, f"astrocloud.{package}.routes defines no APIRouter"


def test_the_data_channel_has_a_package_for_the_vo_protocols():
    import astrocloud.data.vo as vo

    assert vo.__doc__
