"""The `alerthub` command: serve on a fresh folder with --demo, and nodes add|list|revoke."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from hub.store.embedded import answers, shared_url
from tests.hubproc import HubProcess


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_nodes_add_list_revoke(redis_url: str, tmp_path: Path) -> None:
    """`nodes add` prints a token once, `list` shows the node, `revoke` marks it revoked."""
    env = {"ALERTHUB_REDIS_URL": redis_url}
    added = run_cli(
        "nodes",
        "add",
        "al-cert",
        "--name",
        "AKCESK",
        "--country",
        "al",
        "--kind",
        "government",
        "--roles",
        "publish",
        env=env,
        cwd=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    assert re.search(r"^ah_[0-9a-f]{16}\.\S+$", added.stdout, re.M)
    again = run_cli(
        "nodes",
        "add",
        "al-cert",
        "--name",
        "x",
        "--country",
        "AL",
        "--kind",
        "government",
        env=env,
        cwd=tmp_path,
    )
    assert again.returncode == 1 and "exists" in again.stderr
    bad = run_cli(
        "nodes",
        "add",
        "Bad Id",
        "--name",
        "x",
        "--country",
        "Serbia",
        "--kind",
        "government",
        env=env,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "/id" in bad.stderr
    listed = run_cli("nodes", "list", env=env, cwd=tmp_path)
    assert re.search(r"^al-cert\s+AL\s+government\s+publish\s+active$", listed.stdout, re.M)
    revoked = run_cli("nodes", "revoke", "al-cert", env=env, cwd=tmp_path)
    assert revoked.returncode == 0
    listed = run_cli("nodes", "list", env=env, cwd=tmp_path)
    assert "revoked" in listed.stdout
    missing = run_cli("nodes", "revoke", "nobody", env=env, cwd=tmp_path)
    assert missing.returncode == 1


@pytest.mark.timeout(90)
def test_serve_demo_on_a_fresh_folder(tmp_path: Path) -> None:
    """`alerthub serve --demo` starts embedded Redis, prints working tokens, stops Redis on exit,
    and the CLI shares the running hub's Redis."""
    env = {"ALERTHUB_DATA_DIR": str(tmp_path / "data"), "ALERTHUB_LOG_LEVEL": "warning"}
    hub = HubProcess(env=env, cwd=tmp_path, args=("--demo",)).start()
    try:
        url = shared_url((tmp_path / "data").resolve())
        assert url is not None and answers(url)
        out = hub.output()
        tokens = dict(re.findall(r"^\s+([a-z0-9-]+)\s+\S+\s+\S+\s+(ah_\S+)$", out, re.M))
        assert {"al-cert", "ba-cert", "xk-cert", "me-cert", "mk-cert", "rs-cert"} <= set(tokens)
        assert len([n for n in tokens if n.startswith("factcheck-")]) == 2
        request = urllib.request.Request(
            f"{hub.base_url}/v1/nodes", headers={"Authorization": f"Bearer {tokens['operator']}"}
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert len(json.load(resp)["nodes"]) == 9
        listed = run_cli("nodes", "list", env=env, cwd=tmp_path)
        assert "rs-cert" in listed.stdout
        second = run_cli("serve", "--port", "1", env=env, cwd=tmp_path)
        assert second.returncode == 1 and "ALERTHUB_REDIS_URL=" in second.stderr
    finally:
        assert hub.stop() == 0
    assert not answers(url)
