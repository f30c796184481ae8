"""`pip install .` alone gives a complete application: the wheel carries the compiled
translations, templates, static assets, migrations and default policies."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_is_complete(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("astrocloud-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "astrocloud/core/locale/zh_CN/LC_MESSAGES/messages.mo",
        "astrocloud/core/web/static/astrocloud.css",
        "astrocloud/core/web/static/astrocloud.js",
        "astrocloud/core/web/templates/base.html",
        "astrocloud/core/security/default_policy.toml",
        "astrocloud/migrations/env.py",
        "astrocloud/migrations/script.py.mako",
    ):
        assert expected in names, f"{expected} is missing from the wheel"
    assert any(n.startswith("astrocloud/migrations/versions/0001_") for n in names)
