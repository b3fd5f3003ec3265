"""The CLI's pure text work: which inputs are alerts and where a bad one is, and what a user
reads (result lines, problems, event lines, the table, the progress bar)."""

from __future__ import annotations

import io
import json

import pytest

from alerthub_client.cli_text import (
    InputError,
    Progress,
    alert_table,
    event_line,
    parse_alerts,
    result_lines,
)

A = {"id": "a-1", "kind": "threat"}
B = {"id": "b-2", "kind": "threat"}


def sources(name: str, text: str) -> list[tuple[str, str]]:
    return [(item.source, item.alert["id"]) for item in parse_alerts(name, text)]


def test_json_shapes_and_ndjson_are_all_read() -> None:
    """One object, a list, {"alerts": [...]}, and NDJSON (by content or by suffix) give the
    alerts in order, each labelled by where it is; empty input is no alerts."""
    assert sources("f.json", json.dumps(A, indent=2)) == [("f.json", "a-1")]
    assert sources("f.json", json.dumps([A, B])) == [("f.json[0]", "a-1"), ("f.json[1]", "b-2")]
    assert sources("f.json", json.dumps({"alerts": [B]})) == [("f.json[0]", "b-2")]
    lines = f"{json.dumps(A)}\n\n  \n{json.dumps(B)}\n"
    assert sources("f.txt", lines) == [("f.txt:1", "a-1"), ("f.txt:4", "b-2")]
    assert sources("one.ndjson", json.dumps(A)) == [("one.ndjson:1", "a-1")]
    assert sources("f.jsonl", "") == [] and sources("f.json", " \n") == []


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("f.ndjson", f"{json.dumps(A)}\n{{oops\n", "f.ndjson:2:2: not JSON"),
        ("f.txt", f"{json.dumps(A)}\n\n[1,\n", "f.txt:3:"),
        ("f.json", '{\n  "id": x\n}', "f.json:2:9: not JSON"),
        ("f.json", "[1]", "f.json[0]: an alert must be a JSON object, not int"),
        ("f.ndjson", '"text"', "f.ndjson:1: an alert must be a JSON object, not str"),
        ("f.json", "42", 'f.json: expected an alert object, a list of alerts or {"alerts"'),
    ],
)
def test_bad_input_names_the_place(name: str, text: str, message: str) -> None:
    """Input that is not alerts is refused with the file, line (and column) of the fault."""
    with pytest.raises(InputError) as refused:
        parse_alerts(name, text)
    assert str(refused.value).startswith(message)


def test_result_lines_say_what_the_hub_did() -> None:
    """Accepted alerts show status and hub id (and the earlier report of a corroboration); a
    rejected one shows its error and one line per problem."""
    assert result_lines("f:1", {"index": 0, "status": "created", "hub_id": "h1"}) == [
        "f:1\tcreated\th1"
    ]
    corroborated = {"status": "corroborated", "hub_id": "h2", "duplicate_of": "h1"}
    assert result_lines("f:2", corroborated) == ["f:2\tcorroborated\th2\tduplicate_of=h1"]
    error = {
        "error": "validation_failed",
        "message": "2 problems in the alert",
        "details": [
            {"pointer": "/severity", "rule": "enum", "message": "must be one of low..."},
            {"pointer": "", "message": "title is required"},
        ],
    }
    assert result_lines("f:3", {"status": "rejected", "error": error}) == [
        "f:3\trejected\tvalidation_failed: 2 problems in the alert",
        "    /severity (enum): must be one of low...",
        "    /: title is required",
    ]


def test_event_line_and_table() -> None:
    """An event is one line in a fixed order; the table aligns columns and cuts long titles;
    missing fields show as '-' or empty, never an error."""
    event = {
        "id": "1-0",
        "type": "alert.created",
        "hub_id": "h1",
        "occurred_at": "2026-11-21T10:00:00Z",
        "alert": {"severity": "high", "tlp": "AMBER", "sender": "al-cert", "title": "Phish"},
    }
    assert event_line(event).split() == [
        "2026-11-21T10:00:00Z",
        "alert.created",
        "high",
        "AMBER",
        "al-cert",
        "Phish",
        "[h1]",
    ]
    assert event_line({"type": "alert.retracted"}).split()[:2] == ["-", "alert.retracted"]
    registered = {
        "id": "2-0",
        "type": "node.registered",
        "occurred_at": "2026-11-22T09:00:00Z",
        "node": {"id": "rs-2", "name": "SRB MoD cell", "country": "RS", "kind": "government",
                 "roles": ["publish", "subscribe"], "created_at": "2026-11-22T09:00:00Z",
                 "registered_by": "operator"},
    }  # fmt: skip
    assert event_line(registered) == (
        "2026-11-22T09:00:00Z node.registered    rs-2 (RS, government; publish, subscribe) "
        "registered by operator: SRB MoD cell"
    )
    assert event_line({"type": "node.registered"}).split()[:2] == ["-", "node.registered"]
    table = alert_table(
        [{"hub_id": "h1", "kind": "threat", "title": "x" * 80}, {"hub_id": "h22", "tlp": "RED"}],
        title_width=20,
    ).splitlines()
    assert table[0].split() == ["HUB_ID", "RECEIVED_AT", "KIND", "SEVERITY", "TLP", "SENDER",
                                "STATUS", "TITLE"]  # fmt: skip
    assert table[1].endswith("x" * 19 + "…")
    assert table[0].index("KIND") == table[1].index("threat")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_on_a_terminal_and_logs_elsewhere() -> None:
    """On a terminal the bar is redrawn in place and ends with a newline; elsewhere each
    update is its own line."""
    tty = Tty()
    bar = Progress(tty, 4, width=4)
    bar.update(2)
    bar.update(4)
    bar.finish()
    assert tty.getvalue() == "\r[##..] 2/4 alerts\r[####] 4/4 alerts\n"
    log = io.StringIO()
    bar = Progress(log, 3, width=3)
    bar.update(1)
    bar.update(3)
    bar.finish()
    assert log.getvalue() == "[#..] 1/3 alerts\n[###] 3/3 alerts\n"
