"""`alerthub-client` driven as a subprocess against a real hub process on its own Redis: post
(JSON, NDJSON, stdin, batches with progress, rejections, bad input), the exit codes a shell user
relies on, get/list/retract, subscribe, tail over SSE and receive of signed webhooks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from hub import __version__ as hub_version
from hub.store.embedded import free_port, start_redis_server
from tests.conftest import OPERATOR_TOKEN, unique_threat
from tests.faults.redis_harness import hub_env
from tests.hubproc import HubProcess

CLI = (sys.executable, "-m", "alerthub_client.cli")
WAIT_S = 20.0


@dataclass(frozen=True)
class Hub:
    url: str
    tokens: dict[str, str]

    def http(self, method: str, path: str, node: str, body: Any = None) -> tuple[int, Any]:
        """One request straight to the hub (not through the client under test)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.tokens[node]}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            with e:
                return e.code, json.loads(e.read() or b"null")

    def stored_ids(self, node: str = "al-cert") -> set[str]:
        """The sender ids of the alerts `node` may see (the test hub holds a few dozen)."""
        ids: set[str] = set()
        after = ""
        while True:
            status, body = self.http("GET", f"/v1/alerts?limit=500{after}", node)
            assert status == 200, body
            ids.update(alert["id"] for alert in body["alerts"])
            if not body["next"]:
                return ids
            after = f"&after={body['next']}"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One hub process on a Redis of its own for the whole module, with two government nodes."""
    folder = tmp_path_factory.mktemp("cli-hub")
    redis = start_redis_server(folder / "redis", port=free_port())
    proc = HubProcess(env=hub_env(redis.url), cwd=folder)
    try:
        proc.start()
        found = Hub(proc.base_url, {"operator": OPERATOR_TOKEN})
        for node, country in (("al-cert", "AL"), ("me-cert", "ME")):
            body = {
                "id": node,
                "name": node,
                "country": country,
                "kind": "government",
                "roles": ["publish", "subscribe"],
            }
            status, answer = found.http("POST", "/v1/nodes", "operator", body)
            assert status == 201, answer
            found.tokens[node] = answer["token"]
        yield found
    finally:
        if proc.process is not None:
            proc.stop()
        redis.stop()


def cli_env(hub: Hub | None, node: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTHUB_")}
    if hub is not None:
        env["ALERTHUB_URL"] = hub.url
    if hub is not None and node is not None:
        env["ALERTHUB_TOKEN"] = hub.tokens[node]
    return env


def run(
    hub: Hub | None, *args: str, node: str | None = "al-cert", stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=cli_env(hub, node),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )


def start(
    hub: Hub, *args: str, node: str | None = "me-cert", secret: str | None = None
) -> subprocess.Popen[str]:
    env = cli_env(hub, node)
    if secret is not None:
        env["ALERTHUB_WEBHOOK_SECRET"] = secret
    return subprocess.Popen(
        [*CLI, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def end(proc: subprocess.Popen[str]) -> None:
    """Stop a command still running (a failed test) and close its pipes."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def read_line(stream: IO[str] | None, proc: subprocess.Popen[str]) -> str:
    """The next line of a running command's output (readline is bounded by the command's own
    end: the test's timeout stops a hang)."""
    assert stream is not None
    line = stream.readline()
    assert line, f"the command ended early ({proc.poll()}): {proc.stderr and proc.stderr.read()}"
    return line


def new_id(prefix: str = "cli") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def rows(out: str) -> list[list[str]]:
    return [line.split("\t") for line in out.splitlines() if not line.startswith(" ")]


def test_help_names_commands_environment_and_exit_codes() -> None:
    """--help lists every command, the environment variables and the exit codes; a bad flag
    is a usage error (2)."""
    shown = run(None, "--help", node=None)
    assert shown.returncode == 0
    for word in ("post", "get", "list", "retract", "subscribe", "tail", "receive"):
        assert f"    {word} " in shown.stdout
    for word in ("ALERTHUB_URL", "ALERTHUB_TOKEN", "ALERTHUB_WEBHOOK_SECRET", "exit codes", "130"):
        assert word in shown.stdout
    bad = run(None, "list", "--limit", "0", node=None)
    assert bad.returncode == 2 and "--limit" in bad.stderr


def test_version_is_the_installed_packages() -> None:
    """`alerthub-client --version` prints the version of the alerthub package it came with, the
    same one `alerthub --version` prints."""
    shown = run(None, "--version", node=None)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == f"alerthub-client {hub_version}\n"


def test_post_json_ndjson_and_stdin(hub: Hub, tmp_path: Path) -> None:
    """A JSON alert, a JSON list, {"alerts": [...]}, NDJSON with a blank line and NDJSON on
    stdin are all posted, each reported by file and place with its hub id; posting again says
    unchanged, and another node's report of the same content names the earlier one."""
    ids = [new_id() for _ in range(8)]
    one = tmp_path / "one.json"
    one.write_text(json.dumps(unique_threat(ids[0]), indent=2))
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([unique_threat(ids[1]), unique_threat(ids[2])]))
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"alerts": [unique_threat(ids[3])]}))
    lines = tmp_path / "lines.ndjson"
    lines.write_text(json.dumps(unique_threat(ids[4])) + "\n\n" + json.dumps(unique_threat(ids[5])))
    stdin = "".join(json.dumps(unique_threat(i)) + "\n" for i in ids[6:])

    done = run(hub, "post", str(one), str(listed), str(wrapped), str(lines), "-", stdin=stdin)

    assert done.returncode == 0, done.stderr
    got = rows(done.stdout)
    sources = [row[0] for row in got]
    assert sources == [
        str(one),
        f"{listed}[0]",
        f"{listed}[1]",
        f"{wrapped}[0]",
        f"{lines}:1",
        f"{lines}:3",
        "<stdin>:1",
        "<stdin>:2",
    ]
    assert all(row[1] == "created" and row[2] for row in got)
    assert set(ids) <= hub.stored_ids()

    again = run(hub, "post", str(one))
    assert again.returncode == 0 and rows(again.stdout) == [[str(one), "unchanged", got[0][2]]]
    same = tmp_path / "same.json"
    same.write_text(json.dumps({**unique_threat(ids[0]), "id": new_id("me")}))
    corroborated = run(hub, "post", str(same), node="me-cert")
    assert corroborated.returncode == 0, corroborated.stderr
    [[_, status, _, duplicate]] = rows(corroborated.stdout)
    assert status == "corroborated" and duplicate == f"duplicate_of={got[0][2]}"


def test_post_in_batches_with_progress_keeps_json_clean(hub: Hub, tmp_path: Path) -> None:
    """Over one batch, --progress draws on stderr after each batch while --json results on
    stdout stay one parseable object per alert, in input order."""
    ids = [new_id() for _ in range(7)]
    path = tmp_path / "many.ndjson"
    path.write_text("".join(json.dumps(unique_threat(i)) + "\n" for i in ids))

    done = run(hub, "post", str(path), "--batch-size", "3", "--progress", "--json")

    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["index"] for r in results] == list(range(7))
    assert [r["source"] for r in results] == [f"{path}:{n}" for n in range(1, 8)]
    assert {r["status"] for r in results} == {"created"}
    assert [line.split("] ")[1] for line in done.stderr.splitlines() if line.startswith("[")] == [
        "3/7 alerts",
        "6/7 alerts",
        "7/7 alerts",
    ]
    assert set(ids) <= hub.stored_ids()


def test_rejected_alert_exits_1_and_names_its_problem(hub: Hub, tmp_path: Path) -> None:
    """One bad alert among good ones: the good ones are stored, the bad one is reported with
    the hub's pointer, rule and message, and the exit code is 1."""
    good, bad = new_id(), new_id()
    path = tmp_path / "mixed.ndjson"
    path.write_text(
        json.dumps(unique_threat(good)) + "\n" + json.dumps(unique_threat(bad, severity="extreme"))
    )

    done = run(hub, "post", str(path))

    assert done.returncode == 1
    assert f"{path}:1\tcreated\t" in done.stdout
    assert f"{path}:2\trejected\tvalidation_failed: " in done.stdout
    assert "    /severity (enum): " in done.stdout
    assert "1 of 2 alerts rejected" in done.stderr
    stored = hub.stored_ids()
    assert good in stored and bad not in stored


def test_bad_input_exits_2_and_sends_nothing(hub: Hub, tmp_path: Path) -> None:
    """A broken NDJSON line, a broken JSON document, a non-object alert or a missing file:
    exit 2 naming the place, and none of the good alerts given with it is sent."""
    good_id = new_id()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(unique_threat(good_id)))
    broken_lines = tmp_path / "broken.ndjson"
    broken_lines.write_text(json.dumps(unique_threat(new_id())) + '\n\n{"id": \n')
    broken_doc = tmp_path / "broken.json"
    broken_doc.write_text('{\n  "id": "x",\n  "kind": threat\n}\n')
    not_object = tmp_path / "numbers.json"
    not_object.write_text("[1, 2]")

    cases = (
        (broken_lines, f"{broken_lines}:3:"),
        (broken_doc, f"{broken_doc}:3:11: not JSON"),
        (not_object, f"{not_object}[0]: an alert must be a JSON object"),
        (tmp_path / "missing.json", "cannot read"),
    )
    for bad, message in cases:
        done = run(hub, "post", str(good), str(bad))
        assert done.returncode == 2, (bad, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr
        assert done.stdout == ""
    assert good_id not in hub.stored_ids()


def test_token_and_reachability_errors(hub: Hub, tmp_path: Path) -> None:
    """No token: 2 before anything is sent; a wrong token: 1 with the hub's 401; no hub at the
    URL: 3. Each is one line on stderr, no traceback."""
    path = tmp_path / "a.json"
    path.write_text(json.dumps(unique_threat(new_id())))

    missing = run(hub, "post", str(path), node=None)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "alerthub-client: no token: give --token or set ALERTHUB_TOKEN"

    wrong = run(hub, "--token", "ah_0000000000000000.wrong", "post", str(path))
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("alerthub-client: 401 unauthenticated: ")
    assert len(wrong.stderr.strip().splitlines()) == 1

    nowhere = f"http://127.0.0.1:{free_port()}"
    for args in (("post", str(path)), ("get", "x"), ("tail", "sub")):
        gone = run(hub, *args, "--url", nowhere, "--timeout", "5")
        assert gone.returncode == 3, (args, gone.stderr)
        assert gone.stderr.startswith(
            f"alerthub-client: unreachable: cannot reach the hub at {nowhere}"
        )
        assert "Traceback" not in gone.stderr


def test_get_list_and_retract(hub: Hub, tmp_path: Path) -> None:
    """get prints the stored alert as JSON; list shows a table one page at a time with the next
    cursor on stderr, and --all --json every alert; retract marks the alert retracted; an
    unknown id is 404 and exit 1."""
    first, second = new_id("list"), new_id("list")
    path = tmp_path / "two.json"
    path.write_text(json.dumps([unique_threat(first), unique_threat(second, title="Second one")]))
    posted = run(hub, "post", "--json", str(path))
    hub_ids = [json.loads(line)["hub_id"] for line in posted.stdout.splitlines()]

    got = run(hub, "get", hub_ids[1])
    assert got.returncode == 0, got.stderr
    alert = json.loads(got.stdout)
    assert (alert["id"], alert["hub_id"], alert["sender"]) == (second, hub_ids[1], "al-cert")

    page = run(hub, "list", "--kind", "threat", "--target-country", "AL", "--limit", "1")
    assert page.returncode == 0, page.stderr
    header, row = page.stdout.splitlines()
    assert header.split()[:3] == ["HUB_ID", "RECEIVED_AT", "KIND"]
    assert row.startswith(hub_ids[1]) and row.endswith("Second one")  # newest first
    assert "more alerts: add --after " in page.stderr

    everything = run(hub, "list", "--all", "--json", "--kind", "threat")
    listed = [json.loads(line)["hub_id"] for line in everything.stdout.splitlines()]
    assert set(hub_ids) <= set(listed) and len(listed) == len(set(listed))

    retracted = run(hub, "retract", hub_ids[0], "--reason", "false positive")
    assert retracted.returncode == 0, retracted.stderr
    assert json.loads(run(hub, "get", hub_ids[0]).stdout)["status"] == "retracted"
    no_reason = run(hub, "retract", hub_ids[1])
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr

    unknown = run(hub, "get", "no-such-alert")
    assert unknown.returncode == 1 and unknown.stderr.startswith("alerthub-client: 404 not_found")


def test_subscribe_pull_and_webhook(hub: Hub) -> None:
    """--pull with repeated and comma-separated filter flags stores that filter; --webhook
    prints the secret once with the export hint; a bad filter is the hub's 422, exit 1, with
    the pointer of the problem."""
    pull = run(
        hub,
        "subscribe",
        "--pull",
        "--kind",
        "threat",
        "--target-country",
        "AL,ME",
        "--target-country",
        "XK",
        "--min-severity",
        "high",
        node="me-cert",
    )
    assert pull.returncode == 0, pull.stderr
    sub_id = pull.stdout.splitlines()[0].removeprefix("id: ")
    status, stored = hub.http("GET", f"/v1/subscriptions/{sub_id}", "me-cert")
    assert status == 200, stored
    assert stored["filter"]["kinds"] == ["threat"]
    assert stored["filter"]["target_countries"] == ["AL", "ME", "XK"]
    assert stored["filter"]["min_severity"] == "high"
    assert f"alerthub-client tail {sub_id}" in pull.stderr

    hook = run(hub, "subscribe", "--webhook", f"http://127.0.0.1:{free_port()}/", node="me-cert")
    assert hook.returncode == 0, hook.stderr
    fields = dict(line.split(": ", 1) for line in hook.stdout.splitlines())
    assert fields["status"] == "pending" and fields["secret"].startswith("whsec_")
    assert f"export ALERTHUB_WEBHOOK_SECRET={fields['secret']}" in hook.stderr

    bad = run(hub, "subscribe", "--pull", "--target-country", "Serbia", node="me-cert")
    assert bad.returncode == 1
    assert bad.stderr.startswith("alerthub-client: 422 validation_failed")
    assert "/filter/target_countries/0" in bad.stderr

    neither = run(hub, "subscribe", node="me-cert")
    assert neither.returncode == 2 and "--webhook" in neither.stderr


def subscribe_pull(hub: Hub, *filters: str) -> str:
    done = run(hub, "subscribe", "--pull", "--json", *filters, node="me-cert")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["id"]


def post_one(hub: Hub, alert: dict[str, Any], tmp_path: Path) -> str:
    path = tmp_path / f"{alert['id']}.json"
    path.write_text(json.dumps(alert))
    done = run(hub, "post", "--json", str(path))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["hub_id"]


def test_tail_json_count_receives_posted_alerts(hub: Hub, tmp_path: Path) -> None:
    """tail --json --count 2 prints the full events of alerts posted before it started and
    while it runs, then ends with 0."""
    sub_id = subscribe_pull(hub, "--kind", "threat")
    before = post_one(hub, unique_threat(new_id("tail")), tmp_path)
    tail = start(hub, "tail", sub_id, "--json", "--count", "2")
    try:
        first = json.loads(read_line(tail.stdout, tail))
        assert (first["type"], first["hub_id"]) == ("alert.created", before)
        assert first["alert"]["sender"] == "al-cert"
        during = post_one(hub, unique_threat(new_id("tail")), tmp_path)
        second = json.loads(read_line(tail.stdout, tail))
        assert (second["type"], second["hub_id"]) == ("alert.created", during)
        assert tail.wait(timeout=WAIT_S) == 0
    finally:
        end(tail)

    resumed = run(
        hub, "tail", sub_id, "--json", "--count", "1", "--after", first["id"], node="me-cert"
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["hub_id"] == during


def test_tail_human_lines_and_ctrl_c(hub: Hub, tmp_path: Path) -> None:
    """Without --json each event is one line with time, type, severity, TLP, sender, title and
    hub id; Ctrl-C ends tail with 0 and no traceback."""
    sub_id = subscribe_pull(hub, "--target-country", "ME")
    alert = unique_threat(new_id("human"), title="Fake e-Albania login page", tlp="GREEN")
    hub_id = post_one(hub, alert, tmp_path)
    tail = start(hub, "tail", sub_id)
    try:
        line = read_line(tail.stdout, tail).split()
        assert line[1:5] == ["alert.created", "critical", "GREEN", "al-cert"]
        assert " ".join(line[5:]) == f"Fake e-Albania login page [{hub_id}]"
        tail.send_signal(signal.SIGINT)
        assert tail.wait(timeout=WAIT_S) == 0
        _, err = tail.communicate()
        assert "Traceback" not in err
    finally:
        end(tail)


def test_receive_prints_verified_webhook_deliveries(hub: Hub, tmp_path: Path) -> None:
    """receive answers the hub's challenge, refuses (and logs) a forged delivery, prints the
    signed event of a posted alert and ends after --count."""
    port = free_port()
    made = run(hub, "subscribe", "--webhook", f"http://127.0.0.1:{port}/hook", node="me-cert")
    assert made.returncode == 0, made.stderr
    secret = dict(line.split(": ", 1) for line in made.stdout.splitlines())["secret"]
    receiver = start(
        hub,
        "receive",
        "--port",
        str(port),
        "--path",
        "/hook",
        "--json",
        "--count",
        "1",
        node=None,
        secret=secret,
    )
    try:
        ready = read_line(receiver.stderr, receiver)
        assert f"receiving webhooks at http://127.0.0.1:{port}/hook" in ready
        forged = urllib.request.Request(
            f"http://127.0.0.1:{port}/hook",
            data=b'{"type": "forged"}',
            method="POST",
            headers={
                "webhook-id": "forged-1",
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "v1,Zm9yZ2Vk",
            },
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged, timeout=10)
        refused.value.close()
        assert refused.value.code == 401
        hub_id = post_one(hub, unique_threat(new_id("hook")), tmp_path)
        assert receiver.wait(timeout=WAIT_S) == 0
        out, err = receiver.communicate()
    finally:
        end(receiver)
    event = json.loads(out)
    assert event.get("type") == "alert.created", (out, err)
    assert (event["type"], event["hub_id"]) == ("alert.created", hub_id)
    assert "webhook refused: no v1 signature" in err
