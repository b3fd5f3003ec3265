"""The pure text work of `alerthub-client`: alerts out of JSON or NDJSON input, and the lines,
tables and progress bar it prints. No I/O here beyond the stream a progress bar is given."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

ACCEPTED = frozenset({"created", "corroborated", "updated", "unchanged"})
NDJSON_SUFFIXES = (".ndjson", ".jsonl")


class InputError(ValueError):
    """Input that cannot be read as alerts; str() names the file (and line) at fault."""


@dataclass(frozen=True)
class Item:
    """One alert to post and where it came from (`file`, `file[3]`, `file:12`)."""

    source: str
    alert: dict[str, Any]


def parse_alerts(name: str, text: str) -> list[Item]:
    """The alerts of one input: a JSON document (one alert, a list of alerts, or
    {"alerts": [...]}) or NDJSON (one alert per line, blank lines skipped). Raises InputError
    naming the file and line of the first thing that is not an alert."""
    if name.endswith(NDJSON_SUFFIXES):
        return _ndjson(name, text)
    if not text.strip():
        return []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        if _first_line_is_json(text):
            return _ndjson(name, text)
        raise InputError(f"{name}:{e.lineno}:{e.colno}: not JSON: {e.msg}") from e
    if isinstance(doc, dict) and set(doc) == {"alerts"} and isinstance(doc["alerts"], list):
        doc = doc["alerts"]
    if isinstance(doc, dict):
        return [Item(name, doc)]
    if isinstance(doc, list):
        items = [Item(f"{name}[{i}]", alert) for i, alert in enumerate(doc)]
        for item in items:
            _require_object(item)
        return items
    raise InputError(f'{name}: expected an alert object, a list of alerts or {{"alerts": [...]}}')


def parse_misp(name: str, text: str) -> list[Item]:
    """The MISP events of one input: one event (`{"Event": ...}`), a list of them, or MISP's
    REST answer {"response": [...]}. Raises InputError naming the file at fault."""
    if not text.strip():
        return []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{name}:{e.lineno}:{e.colno}: not JSON: {e.msg}") from e
    if isinstance(doc, dict) and isinstance(doc.get("response"), list):
        doc = doc["response"]
    if isinstance(doc, dict):
        return [Item(name, doc)]
    if isinstance(doc, list):
        return [_require_object(Item(f"{name}[{i}]", event)) for i, event in enumerate(doc)]
    raise InputError(f'{name}: expected a MISP event, a list of events or {{"response": [...]}}')


def _first_line_is_json(text: str) -> bool:
    first = next(line for line in text.splitlines() if line.strip())
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def _ndjson(name: str, text: str) -> list[Item]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        source = f"{name}:{number}"
        try:
            alert = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{source}:{e.colno}: not JSON: {e.msg}") from e
        items.append(_require_object(Item(source, alert)))
    return items


def _require_object(item: Item) -> Item:
    if not isinstance(item.alert, dict):
        kind = type(item.alert).__name__
        raise InputError(f"{item.source}: an alert must be a JSON object, not {kind}")
    return item


def problem_lines(error: Mapping[str, Any]) -> list[str]:
    """The details of an API error body, one indented line each: pointer (rule): message."""
    lines = []
    for detail in error.get("details") or []:
        pointer = detail.get("pointer") or "/"
        rule = f" ({detail['rule']})" if detail.get("rule") else ""
        lines.append(f"    {pointer}{rule}: {detail.get('message', '')}")
    return lines


def result_lines(source: str, result: Mapping[str, Any]) -> list[str]:
    """What `post` prints for one alert: source, status, hub id and the earlier report it
    duplicates; for a rejected alert the error and each of its problems."""
    status = result.get("status", "?")
    if status == "rejected":
        error = result.get("error") or {}
        head = f"{source}\trejected\t{error.get('error', '?')}: {error.get('message', '')}"
        return [head, *problem_lines(error)]
    line = f"{source}\t{status}\t{result.get('hub_id', '')}"
    if result.get("duplicate_of"):
        line += f"\tduplicate_of={result['duplicate_of']}"
    skipped = [
        f"    skipped {s.get('pointer', '')}: {s.get('reason', '')}"
        for s in result.get("skipped") or []
    ]
    return [line, *skipped]


def event_line(event: Mapping[str, Any]) -> str:
    """One feed event as a human line: time, type, severity, TLP, sender, title, hub id; for a
    node.registered event, time, type and who was registered, as what and by whom."""
    if event.get("type") == "node.registered":
        return _registration_line(event)
    alert = event.get("alert") or {}
    fields = (
        event.get("occurred_at") or "-",
        f"{event.get('type', '?'):<18}",
        f"{alert.get('severity', '-'):<8}",
        f"{alert.get('tlp', '-'):<12}",
        f"{alert.get('sender', '-'):<14}",
        alert.get("title", "-"),
        f"[{event.get('hub_id') or alert.get('hub_id') or '-'}]",
    )
    return " ".join(fields)


def _registration_line(event: Mapping[str, Any]) -> str:
    node = event.get("node") if isinstance(event.get("node"), Mapping) else {}
    roles = ", ".join(str(r) for r in node.get("roles") or ()) or "no roles"
    return " ".join(
        (
            event.get("occurred_at") or "-",
            f"{'node.registered':<18}",
            f"{node.get('id', '-')} ({node.get('country') or '-'}, {node.get('kind', '-')}; "
            f"{roles}) registered by {node.get('registered_by') or '-'}:",
            str(node.get("name", "-")),
        )
    )


TABLE_COLUMNS = ("hub_id", "received_at", "kind", "severity", "tlp", "sender", "status", "title")


def alert_table(alerts: Iterable[Mapping[str, Any]], title_width: int = 60) -> str:
    """Alerts as an aligned text table with a header row; long titles are cut."""
    rows = [[c.upper() for c in TABLE_COLUMNS]]
    for alert in alerts:
        row = [str(alert.get(c, "") or "") for c in TABLE_COLUMNS]
        if len(row[-1]) > title_width:
            row[-1] = row[-1][: title_width - 1] + "…"
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE_COLUMNS) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
        for r in rows
    )


class Progress:
    """A progress bar for `total` alerts on `stream`: redrawn in place on a terminal, one line
    per update elsewhere (a log keeps every step)."""

    def __init__(self, stream: TextIO, total: int, width: int = 30) -> None:
        self._stream = stream
        self._total = max(total, 1)
        self._width = width
        self._tty = stream.isatty()
        self.done = 0

    def update(self, done: int) -> None:
        self.done = min(done, self._total)
        filled = self._width * self.done // self._total
        bar = "#" * filled + "." * (self._width - filled)
        text = f"[{bar}] {self.done}/{self._total} alerts"
        self._stream.write(f"\r{text}" if self._tty else f"{text}\n")
        self._stream.flush()

    def finish(self) -> None:
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()
