"""Runs one page's blocks the way a reader follows them: in order, in one work folder laid out
like the repository, against a hub started as the README starts it (`alerthub serve --demo`,
the venv's own command), with the venv's bin first on PATH and the variables the README exports
set from what that hub printed. Variables a block sets carry over to the page's later blocks,
as they would in the reader's terminal. A page of docs/ continues the README's tour, so the
README's blocks run first, up to `alerthub demo` (which runs a hub of its own and leaves nothing
behind)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from itertools import takewhile
from pathlib import Path

from hub.store.embedded import free_port, stop_process
from tests.docs.blocks import ROOT, Block, blocks, output_matches
from tests.hubproc import http_ok, wait_until

BIN = Path(sys.executable).parent
BLOCK_TIMEOUT_S = 60.0
# Ports the pages use for a local receiver; each run gets free ones instead, so that a busy
# port on the machine cannot fail the test. The hub's own port never appears in a run block:
# they reach it through $ALERTHUB_URL, which the test points at its hub.
DOC_PORTS = ("9000",)
# Commands that must never run from a test: a block naming one must be marked `not run`.
NEVER_RUN = re.compile(r"\b(docker|kubectl|systemctl|journalctl|sudo|apt-get|apt)\b")
TOKEN_LINE = re.compile(r"^  (\S+)\s+\S+\s+\S+\s+(ah_\S+)$", re.MULTILINE)
EXPORT_LINE = re.compile(r"^export ([A-Z_][A-Z0-9_]*)=(\S+)(?:\s+#\s*(.*))?$")
SERVE_DEMO = re.compile(r"^((?:[A-Z_][A-Z0-9_]*=\S+\s+)*)(?:\.venv/bin/)?alerthub serve --demo$")
ACTIVATE = re.compile(r"^(?:\.|source) \.venv/bin/activate$")
# Shell state that is the shell's own, not the reader's.
SHELL_OWN = frozenset({"_", "SHLVL", "PWD", "OLDPWD", "DOCS_STATE_FILE"})


class DocsError(AssertionError):
    """A block did not do what its page says; the message says where and what it printed."""


def base_env() -> dict[str, str]:
    """The reader's environment: none of the caller's ALERTHUB_* settings, the venv activated."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ALERTHUB_") and k != "VIRTUAL_ENV"
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    env["PYTHONUNBUFFERED"] = "1"  # stdout and stderr interleave as on a terminal
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def work_folder(path: Path) -> Path:
    """A folder that looks like the repository (links to its files and folders) but keeps what
    the blocks write, the hub's data folder (./var/alerthub) included, out of the checkout."""
    path.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in {"var", ".env", ".git"}:
            (path / entry.name).symlink_to(entry)
    return path


def _not_demo(block: Block) -> bool:
    return not (block.mark == "started by the test" and _last_command(block) == "alerthub demo")


def _last_command(block: Block) -> str:
    return shell_lines(block)[-1].split("&&")[-1].split(" #")[0].strip()


def shell_lines(block: Block) -> list[str]:
    """The block's commands: comment-only and blank lines left out, trailing comments kept."""
    return [
        ln.strip()
        for ln in block.text.splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]


@dataclass
class DemoHub:
    """`alerthub serve --demo` in a work folder, on a free port, and the tokens it printed."""

    cwd: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.cwd / f"hub-{self.port}.log"

    def start(self) -> DemoHub:
        alerthub = BIN / "alerthub"
        if not alerthub.exists():
            raise DocsError(f"{alerthub} is missing: run the tests from the venv the README makes")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(alerthub), "serve", "--demo", "--port", str(self.port)],
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._up, 60, what=f"alerthub serve --demo; log: {self.log}")
        return self

    def _up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise DocsError(f"alerthub serve --demo exited: {self.output()}")
        return http_ok(f"{self.url}/healthz") and "operator" in self.tokens()

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace")

    def tokens(self) -> dict[str, str]:
        """node id -> the token the hub printed for it (`operator` included)."""
        return dict(TOKEN_LINE.findall(self.output()))

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, 20)
            self.process = None


@dataclass
class PageRun:
    """One page's blocks, run in order. `run()` raises DocsError at the first one that fails."""

    page: Path
    cwd: Path
    env: dict[str, str] = field(default_factory=base_env)
    hub: DemoHub | None = None
    ports: dict[str, str] = field(default_factory=lambda: {p: str(free_port()) for p in DOC_PORTS})
    last: Block | None = None
    last_output: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # what each block run took

    def run(self) -> list[Block]:
        """Run every block; returns those run (commands and the ones the test started)."""
        done = []
        readme = ROOT / "README.md"
        tour = [] if self.page == readme else list(takewhile(_not_demo, blocks(readme)))
        try:
            for block in [*tour, *blocks(self.page)]:
                began = time.monotonic()
                if self._do(block):
                    done.append(block)
                    self.seconds[block.where] = time.monotonic() - began
        finally:
            if self.hub is not None:
                self.hub.stop()
        return done

    def _do(self, block: Block) -> bool:
        if block.mark == "unknown":
            raise DocsError(f"{block.where}: not a mark this test knows: {block.reason}")
        if block.mark == "not run":
            self.last, self.last_output = block, None
            return False
        if block.mark == "output":
            self._check_output(block)
            return False
        if block.mark == "set by the test":
            self._set(block)
            self.last, self.last_output = block, None
            return False
        if block.mark == "started by the test":
            self.last_output = self._start(block)
            self.last = block
            return True
        if block.is_command:
            if self.hub is None:
                raise DocsError(f"{block.where}: a command before any hub was started")
            self.last_output = self._command(block)
            self.last = block
            return True
        return False

    # --- what the test does itself -----------------------------------------------------------

    def _start(self, block: Block) -> str:
        command = _last_command(block)
        if command == "alerthub demo":
            return self._demo(block)
        serve = SERVE_DEMO.match(command)
        if serve is None:
            raise DocsError(f"{block.where}: the test does not know how to start {command!r}")
        assignments = dict(a.split("=", 1) for a in serve.group(1).split())
        self._start_hub(assignments)
        assert self.hub is not None
        return self.hub.output()

    def _start_hub(self, assignments: dict[str, str]) -> None:
        if self.hub is not None:
            self.hub.stop()
        self.hub = DemoHub(self.cwd, {**base_env(), **assignments}).start()
        if "ALERTHUB_URL" in self.env:  # the reader's hub is back on its port; ours on a new one
            self.env["ALERTHUB_URL"] = self.hub.url

    def _demo(self, block: Block) -> str:
        """`alerthub demo` unattended: no pauses, a free port, stopped when the scenario ends."""
        done = subprocess.run(
            [str(BIN / "alerthub"), "demo", "--no-wait", "--port", "0"],
            cwd=self.cwd,
            env=base_env(),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
        )
        output = done.stdout + done.stderr
        if done.returncode != 0:
            raise DocsError(f"{block.where}: alerthub demo exited {done.returncode}:\n{output}")
        return output

    def _set(self, block: Block) -> None:
        """The reader's setup: the venv activated (always so here), or the exports of the hub's
        URL and tokens, each `export NAME=... # node-id` set from what the hub printed."""
        lines = shell_lines(block)
        if len(lines) == 1 and ACTIVATE.match(lines[0]):
            assert self.env["PATH"].startswith(str(BIN))
            return
        if self.hub is None:
            raise DocsError(f"{block.where}: variables to set from a hub, but none was started")
        tokens = self.hub.tokens()
        for line in lines:
            export = EXPORT_LINE.match(line)
            if export is None:
                raise DocsError(f"{block.where}: not an `export NAME=VALUE  # node` line: {line}")
            name, _, comment = export.groups()
            if name == "ALERTHUB_URL":
                self.env[name] = self.hub.url
                continue
            named = re.match(r"[a-z0-9][a-z0-9-]*", comment or "")
            node = named.group(0) if named else ""
            if node not in tokens:
                raise DocsError(
                    f"{block.where}: {name} is said to be {node!r}'s token, but the demo "
                    f"printed tokens for {sorted(tokens)} only"
                )
            self.env[name] = tokens[node]

    # --- the reader's commands ---------------------------------------------------------------

    def _command(self, block: Block) -> str:
        if NEVER_RUN.search(block.text):
            raise DocsError(f"{block.where}: mark this block `<!-- not run: REASON -->`")
        if re.search(r"\b8080\b", block.text):
            raise DocsError(f"{block.where}: reach the hub through $ALERTHUB_URL, not port 8080")
        text = block.text
        for port, free in self.ports.items():
            text = re.sub(rf"(?<=[:= ]){port}\b", free, text)
        state = self.cwd / ".docs-state"
        script = f'set -a\n{text}\nenv -0 > "$DOCS_STATE_FILE"\n'
        process = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=self.cwd,
            env={**self.env, "DOCS_STATE_FILE": str(state)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = process.communicate(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, _ = process.communicate()
            raise DocsError(
                f"{block.where}: still running after {BLOCK_TIMEOUT_S} s:\n{block.text}\n"
                f"printed:\n{out.decode('utf-8', 'replace')}"
            ) from None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # whatever the block left running
        printed = out.decode("utf-8", "replace")
        if process.returncode != 0:
            raise DocsError(
                f"{block.where}: exited {process.returncode}:\n{block.text}\nprinted:\n{printed}"
            )
        self.env = {
            name: value
            for name, _, value in (
                item.partition("=") for item in state.read_text("utf-8").split("\0") if item
            )
            if name not in SHELL_OWN
        }
        return printed

    def _check_output(self, block: Block) -> None:
        if self.last is None or self.last_output is None:
            raise DocsError(f"{block.where}: an output block must follow a block that is run")
        if not output_matches(block.text, self.last_output):
            raise DocsError(
                f"{block.where}: the output shown is not what {self.last.where} printed.\n"
                f"shown:\n{block.text}\nprinted:\n{self.last_output}"
            )
