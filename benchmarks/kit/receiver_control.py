"""Starting and driving the receiver processes (benchmarks/kit/receivers.py) of a fan-out run:
webhook endpoints and SSE clients, one JSON line per command over stdin/stdout."""

from __future__ import annotations

import contextlib
import dataclasses
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from .processes import python_env


class ReceiverProc:
    """benchmarks/kit/receivers.py in a process of its own, driven over stdin/stdout."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.kit.receivers", *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=python_env(),
                text=True,
                bufsize=1,
            )

    def read(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"receiver {self.process.args} gave no answer:\n{tail}")
        return orjson.loads(line)

    def ask(self, command: str, timeout: float = 60.0) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclasses.dataclass
class Receivers:
    """The receiver processes of a run; `where[i]` is (process, local index) of subscription i."""

    procs: list[ReceiverProc]
    where: list[tuple[int, int]]

    def count(self) -> int:
        """Distinct (subscription, alert) pairs received so far, over every process."""
        return sum(int(p.ask("count")["count"]) for p in self.procs)

    def dump(self, folder: Path) -> list[dict[str, Any]]:
        """Every process's records (receivers.Records.dump), in process order."""
        out = []
        for n, proc in enumerate(self.procs):
            path = folder / f"records-{n}.json"
            proc.ask(f"dump {path}", timeout=120)
            out.append(orjson.loads(path.read_bytes()))
            path.unlink()
        return out

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


def split(count: int, parts: int) -> list[tuple[int, int]]:
    """Subscription i goes to process i % parts, as that process's local index i // parts."""
    return [(i % parts, i // parts) for i in range(count)]


def start_webhook_receivers(folder: Path, subs: int, procs: int) -> tuple[Receivers, list[str]]:
    """The receiver processes, and the URL of each subscription's endpoint."""
    where = split(subs, procs)
    started: list[ReceiverProc] = []
    ports: list[int] = []
    try:
        for n in range(procs):
            local = sum(1 for p, _ in where if p == n)
            proc = ReceiverProc(["webhook", "--subs", str(local)], folder / f"webhook-{n}.log")
            started.append(proc)
            ports.append(int(proc.read(30)["port"]))
    except BaseException:
        Receivers(started, where).stop()
        raise
    urls = [f"http://127.0.0.1:{ports[p]}/hook/{i}" for p, i in where]
    return Receivers(started, where), urls


def start_sse_receivers(
    folder: Path, procs: int, base_url: str, sub_ids: list[str], tokens: list[str]
) -> Receivers:
    """One SSE client process per `procs`, each reading its share of the subscriptions'
    streams; returns once every stream is open (raises if one is not)."""
    where = split(len(sub_ids), procs)
    started: list[ReceiverProc] = []
    for n in range(procs):
        streams = [
            {"index": local, "sub_id": sub_ids[i], "token": tokens[i]}
            for i, (p, local) in enumerate(where)
            if p == n
        ]
        config = folder / f"sse-{n}.json"
        config.write_bytes(orjson.dumps({"base_url": base_url, "streams": streams}))
        started.append(ReceiverProc(["sse", "--config", str(config)], folder / f"sse-{n}.log"))
    receivers = Receivers(started, where)
    try:
        for proc in started:
            answer = proc.read(90)
            if not answer.get("ready"):
                raise RuntimeError(f"SSE streams did not all open: {answer}")
    except BaseException:
        receivers.stop()
        raise
    return receivers
