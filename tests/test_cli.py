"""The `alerthub` command: serve on a fresh folder with --demo, and nodes add|list|revoke."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.store.embedded import answers, free_port, shared_url
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
        second = run_cli("serve", "--port", str(free_port()), env=env, cwd=tmp_path)
        assert second.returncode == 1 and "ALERTHUB_REDIS_URL=" in second.stderr
    finally:
        assert hub.stop() == 0
    assert not answers(url)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another process listens on."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def test_serve_on_a_busy_port_says_so_in_one_line(busy_port: int, tmp_path: Path) -> None:
    """`serve --demo` on a port in use answers one line and exit 2, as `alerthub demo` does:
    no traceback, no demo token printed, no embedded Redis started."""
    env = {"ALERTHUB_DATA_DIR": str(tmp_path / "data")}
    served = run_cli("serve", "--port", str(busy_port), "--demo", env=env, cwd=tmp_path)
    assert served.returncode == 2
    assert served.stderr.splitlines() == [
        f"alerthub: cannot listen on 127.0.0.1:{busy_port}: Address already in use "
        "(another process listens there: stop it, or choose another --port)"
    ]
    assert "ah_" not in served.stdout
    assert shared_url((tmp_path / "data").resolve()) is None


def test_serve_port_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    """A port past 65535 is refused by the argument parser (exit 2), not by a traceback."""
    served = run_cli("serve", "--port", "70000", env={}, cwd=tmp_path)
    assert served.returncode == 2
    assert "--port: must be 0 to 65535" in served.stderr and "Traceback" not in served.stderr


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (("--workers", "0"), "--workers: must be 1 to 64 or auto, not 0"),
        (("--workers", "many"), "--workers: not a whole number or auto: 'many'"),
        (("--role", "fanout"), "--role: invalid choice: 'fanout'"),
    ],
)
def test_serve_bad_workers_or_role_is_a_usage_error(
    flags: tuple[str, ...], error: str, tmp_path: Path
) -> None:
    """--workers 0, a word that is not auto, or an unknown role: exit 2 and the parser's one
    error line naming the flag, before any Redis starts."""
    served = run_cli("serve", *flags, env={}, cwd=tmp_path)
    assert served.returncode == 2
    assert error in served.stderr.splitlines()[-1] and "Traceback" not in served.stderr


def test_serve_workers_that_cannot_start_stop_the_command_with_exit_3(tmp_path: Path) -> None:
    """--workers 2 on a Redis that refuses: the arbiter stops (exit 3) instead of restarting
    workers in a loop, and the log says why."""
    env = {"ALERTHUB_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    served = run_cli("serve", "--port", str(free_port()), "--workers", "2", env=env, cwd=tmp_path)
    assert served.returncode == 3
    assert "Worker failed to boot" in served.stderr and "Connection refused" in served.stderr
    assert "Traceback" not in served.stderr


def test_serve_bad_alerthub_role_is_one_line(tmp_path: Path) -> None:
    """ALERTHUB_ROLE that names no role: one line naming the variable, exit 2."""
    served = run_cli("serve", env={"ALERTHUB_ROLE": "fanout"}, cwd=tmp_path)
    assert served.returncode == 2
    assert served.stderr.splitlines() == [
        "alerthub: ALERTHUB_ROLE must be one of all, api, delivery, not 'fanout'"
    ]


# Run in a fresh interpreter: which modules a command loaded. rfc3987_syntax builds a grammar
# when imported (1.4 s; jsonschema imports it when it is installed), aiohttp and the app are
# most of the rest of a second.
LOADED = """
import sys
from hub.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = ("rfc3987_syntax", "jsonschema", "aiohttp", "hub.app")
print("loaded:", " ".join(m for m in heavy if m in sys.modules))
raise SystemExit(code)
"""


def loaded_by(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("loaded:")]
    return done.returncode, set(line.removeprefix("loaded:").split())


def test_help_and_nodes_commands_load_no_service_and_no_format_grammar(
    redis_url: str, tmp_path: Path
) -> None:
    """`alerthub --help`, `serve --help` and the `nodes` commands answer without importing
    jsonschema (and the rfc3987_syntax grammar it pulls in), aiohttp or the app: they took
    ~2 s when they did."""
    env = {"ALERTHUB_REDIS_URL": redis_url}
    assert loaded_by("--help", env=env, cwd=tmp_path) == (0, set())
    assert loaded_by("serve", "--help", env=env, cwd=tmp_path) == (0, set())
    add = ("nodes", "add", "mk-cert", "--name", "MKD-CIRT", "--country", "mk", "--kind")
    assert loaded_by(*add, "government", env=env, cwd=tmp_path) == (0, set())
    assert loaded_by("nodes", "list", env=env, cwd=tmp_path) == (0, set())
    assert loaded_by("nodes", "revoke", "mk-cert", env=env, cwd=tmp_path) == (0, set())


def help_entries(text: str) -> dict[str, str]:
    """Each argument of an argparse help page ("  --port PORT  the TCP port..."), by its first
    word, with the help text that follows it ("" when there is none)."""
    entries: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        entry = re.match(r"^  ([-\w]+)((?: [^ ]+)*)(?:  +(.*))?$", line)
        if entry and not line.startswith("   "):
            current = entry.group(1)
            entries[current] = entry.group(3) or ""
        elif current is not None and line.startswith("    ") and line.strip():
            entries[current] = (entries[current] + " " + line.strip()).strip()
        else:
            current = None
    return entries


def test_serve_help_has_a_description_defaults_and_the_environment(tmp_path: Path) -> None:
    """`serve --help` says what serve does, gives each flag's help and default, and lists
    every environment variable the settings read."""
    shown = run_cli("serve", "--help", env={}, cwd=tmp_path)
    assert shown.returncode == 0
    assert "embedded redis-server" in shown.stdout
    entries = help_entries(shown.stdout)
    assert "(default: 127.0.0.1)" in entries["--host"]
    assert "(default: 8080)" in entries["--port"]
    assert entries["--demo"]
    settings_source = (Path(__file__).resolve().parent.parent / "hub" / "settings.py").read_text()
    read = set(re.findall(r'"(ALERTHUB_[A-Z_]+)"', settings_source))
    assert read and {name for name in read if name not in shown.stdout} == set()
    assert "ALERTHUB_SCHEMAS_DIR" in shown.stdout


def test_nodes_add_help_explains_every_argument(tmp_path: Path) -> None:
    """Each argument of `nodes add` has a help text (id, --name, --country, --kind, --roles,
    --withhold-from)."""
    shown = run_cli("nodes", "add", "--help", env={}, cwd=tmp_path)
    assert shown.returncode == 0
    entries = help_entries(shown.stdout)
    for argument in ("ID", "--name", "--country", "--kind", "--roles", "--withhold-from"):
        assert entries.get(argument), (argument, shown.stdout)
