"""The package as pip builds it for an ordinary (not editable) install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What a wheel is built from (deploy/Dockerfile copies the same).
SOURCES = ("pyproject.toml", "README.md", "hub", "schemas", "clients")
# pip's notes on this machine's own configuration (an extra index folder that is not there), not
# on the project.
MACHINE_NOTE = re.compile(r"WARNING: Location '.*' is ignored")


def _shipped(folder: Path) -> list[Path]:
    return [
        p
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]


def expected_wheel_files() -> set[str]:
    """Every module and data file of hub/ and the client, and the schemas inside hub/."""
    expected = {p.relative_to(ROOT).as_posix() for p in _shipped(ROOT / "hub")}
    client = ROOT / "clients"
    expected |= {p.relative_to(client).as_posix() for p in _shipped(client / "alerthub_client")}
    schemas = [*(ROOT / "schemas").glob("*.schema.json"), ROOT / "schemas" / "openapi.yaml"]
    expected |= {f"hub/schemas/{p.name}" for p in schemas}
    return expected


def build_wheel(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`pip wheel -v --no-deps` of a copy of the sources (the build writes build/ and
    *.egg-info next to them); the output and the folder the wheel is in."""
    src = tmp_path / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path / "wheels"
    env = dict(os.environ)
    # Its only effect here is a "byte-compiling is disabled" note from setuptools.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-deps",
            "--wheel-dir",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    return result, out


def test_wheel_builds_without_warnings_and_ships_every_file(tmp_path: Path) -> None:
    """`pip install .` builds a wheel with no setuptools deprecation or packaging warning, and
    the wheel holds every hub and client module, the status page's files, the JSON Schemas
    with openapi.yaml, and the demo scenario."""
    result, out = build_wheel(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    warned = [
        line
        for line in output.splitlines()
        if re.search(r"deprecat|warning", line, re.I) and not MACHINE_NOTE.search(line)
    ]
    assert warned == []
    (wheel,) = out.glob("alerthub-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = expected_wheel_files() - names
    assert missing == set()
    for data in (
        "hub/static/status.html",
        "hub/schemas/alert.schema.json",
        "hub/schemas/openapi.yaml",
        "alerthub_client/scenario/western-balkans.json",
    ):
        assert data in names
