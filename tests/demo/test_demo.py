"""`alerthub demo`: the scenario replayed unattended against a real hub and embedded Redis, what
each partner received checked against a table written here from the sharing rules (API.md,
DESIGN.md), the scenario's alerts against the schemas, and a clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hub.demo.scenario import ScenarioError, parse_scenario, step_mismatches
from hub.ingest.canon import fingerprint, normalise_claim
from hub.ingest.validation import SchemaSet
from hub.store.embedded import answers
from tests.hubproc import http_ok, wait_until

ROOT = Path(__file__).resolve().parents[2]
GOV = ("al-cert", "ba-cert", "xk-cert", "me-cert", "mk-cert", "rs-cert")
PARTNERS = (*GOV, "factcheck-ba", "factcheck-rs")
NEW, CORR, RETR = "alert.created", "alert.corroborated", "alert.retracted"
CHECKED = "alert.fact_checked"

# Written from the rules, not copied from the scenario's own `expect`. Every node subscribes to
# everything except factcheck-rs (disinformation only); a sender's feed gets its own report.
# TLP:CLEAR/GREEN reach every node; AMBER reaches government nodes plus civil-society nodes the
# sender names; RED only the named (a country names its government nodes); withhold_from wins
# over all, a country covering every node of it. A subscriber's first report of an incident is
# alert.created, a later one alert.corroborated; a retraction reaches who got the report.
EXPECTED_STEPS: list[tuple[str, dict[str, str]]] = [
    # 1. al-cert, AMBER threat, nobody named: the six governments.
    ("al-cert-2026-0311", dict.fromkeys(GOV, NEW)),
    # 2. me-cert, GREEN, the same indicators: one incident with 1. The governments have it
    #    already; factcheck-ba sees its first report of it; factcheck-rs filters threats out.
    ("me-cert-2026-0087", {**dict.fromkeys(GOV, CORR), "factcheck-ba": NEW}),
    # 3. me-cert, GREEN threat, new content.
    ("me-cert-2026-0088", {**dict.fromkeys(GOV, NEW), "factcheck-ba": NEW}),
    # 4. al-cert, CLEAR threat.
    ("al-cert-2026-0312", {**dict.fromkeys(GOV, NEW), "factcheck-ba": NEW}),
    # 5. rs-cert, AMBER disinformation (sr-Cyrl) naming factcheck-rs: not factcheck-ba.
    ("rs-cert-2026-0412", {**dict.fromkeys(GOV, NEW), "factcheck-rs": NEW}),
    # 6. ba-cert, GREEN, the same claim in sr-Latn: one incident with 5; factcheck-ba's first.
    (
        "ba-cert-2026-0156",
        {**dict.fromkeys(GOV, CORR), "factcheck-rs": CORR, "factcheck-ba": NEW},
    ),
    # 7. al-cert, GREEN, the campaign in Albanian: other claim text, so a new incident for all.
    ("al-cert-2026-0315", dict.fromkeys(PARTNERS, NEW)),
    # 8. mk-cert, RED to al-cert and ME: the sender, al-cert and me-cert.
    ("mk-cert-2026-0440", dict.fromkeys(("mk-cert", "al-cert", "me-cert"), NEW)),
    # 9. xk-cert, GREEN withheld from RS: neither rs-cert nor factcheck-rs.
    (
        "xk-cert-2026-0203",
        {
            **dict.fromkeys(("al-cert", "ba-cert", "xk-cert", "me-cert", "mk-cert"), NEW),
            "factcheck-ba": NEW,
        },
    ),
    # 10. me-cert retracts 3: whoever received 3.
    ("me-cert-2026-0088", {**dict.fromkeys(GOV, RETR), "factcheck-ba": RETR}),
    # 11. factcheck-rs fact-checks 5 (AMBER, naming it): whoever had a report of the claim (5 or
    #     6) and may see 5, whatever its filter. factcheck-ba had 6 but may not see 5.
    ("rs-cert-2026-0412", {**dict.fromkeys(GOV, CHECKED), "factcheck-rs": CHECKED}),
]


def expected_by_partner() -> dict[str, list[tuple[str, str]]]:
    table: dict[str, list[tuple[str, str]]] = {node: [] for node in PARTNERS}
    for alert_id, receivers in EXPECTED_STEPS:
        for node, event_type in receivers.items():
            table[node].append((alert_id, event_type))
    return table


def run_demo(*args: str, cwd: Path, timeout: float = 45) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", "demo", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def packaged_scenario() -> dict[str, Any]:
    text = resources.files("alerthub_client").joinpath("scenario", "western-balkans.json")
    return json.loads(text.read_text(encoding="utf-8"))


def test_demo_no_wait_delivers_what_the_sharing_rules_allow(tmp_path: Path) -> None:
    """`alerthub demo --no-wait` replays the whole scenario and exits 0, and each partner
    received exactly the events the sharing rules give it, in order, by SSE, pull or webhook."""
    report_path = tmp_path / "report.json"
    data_dir = tmp_path / "data"
    done = run_demo(
        "--no-wait",
        "--port",
        "0",
        "--data-dir",
        str(data_dir),
        "--json",
        str(report_path),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["ok"] is True and report["mismatches"] == []
    partners = report["partners"]
    received = {
        node: [(e["alert_id"], e["type"]) for e in partners[node]["events"]] for node in PARTNERS
    }
    assert received == expected_by_partner()
    assert {partners[n]["delivery"] for n in PARTNERS} == {"sse", "pull", "webhook"}
    # The hub's answers: the corroborations name the first report, and the Albanian copy of
    # the campaign is linked to both Serbian reports.
    steps = report["steps"]
    assert steps[1]["answer"]["status"] == "corroborated"
    assert steps[1]["answer"]["duplicate_of"] == steps[0]["hub_id"]
    assert steps[5]["answer"]["status"] == "corroborated"
    assert steps[5]["answer"]["duplicate_of"] == steps[4]["hub_id"]
    assert set(steps[6]["related"]) == {"rs-cert-2026-0412", "ba-cert-2026-0156"}
    # Why the others did not receive: the hub's explanation, or the policy for AMBER/RED.
    assert (
        steps[8]["not_received"]["rs-cert"] == "withheld: the sender withholds this alert from RS"
    )
    assert "filtered out" in steps[1]["not_received"]["factcheck-rs"]
    assert "civil-society" in steps[0]["not_received"]["factcheck-ba"]
    assert re.search(r"^step 3: me-cert posts .+ \[TLP:GREEN\]$", done.stdout, re.M)
    assert re.search(r"^  ✓ factcheck-ba\s+alert\.created .*signature verified", done.stdout, re.M)
    assert re.search(r"^  ✗ rs-cert\s+withheld: ", done.stdout, re.M)
    # The fact-checker read its queue (the forged notice first: two countries, two scripts),
    # and its verdict went to the CERTs but not to the checkers who may not see that report.
    assert steps[10]["action"] == "fact-check" and steps[10]["answer"]["status"] == "created"
    assert re.search(r"^    1\. .+: 2 countries \(BA, RS\), 2 languages, 2 reports  <- checked",
                     done.stdout, re.M)  # fmt: skip
    assert "civil-society" in steps[10]["not_received"]["factcheck-ba"]
    # The hub and its Redis are gone.
    assert not answers(f"unix://{data_dir.resolve()}/redis.sock")
    assert not http_ok(report["hub_url"] + "/healthz")


def test_demo_fails_naming_an_expectation_that_does_not_hold(tmp_path: Path) -> None:
    """A scenario whose expectation breaks the sharing rules makes the demo exit 1 and name it
    (counted in plain English)."""
    scenario = packaged_scenario()
    first = scenario["steps"][0]  # AMBER: a civil-society partner gets it only when named
    first["expect"]["factcheck-ba"] = NEW
    scenario["steps"] = [first]
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario), encoding="utf-8")
    done = run_demo("--no-wait", "--port", "0", "--scenario", str(path), cwd=tmp_path)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "step 1: factcheck-ba received nothing, expected alert.created" in done.stdout
    assert "1 expectation did not hold:" in done.stdout


def test_scenario_alerts_validate_and_fold_across_scripts() -> None:
    """Every alert of the packaged scenario validates against schemas/alert.schema.json, and the
    Serbian Cyrillic and Latin reports are one content while the Albanian one is another."""
    schema = json.loads((ROOT / "schemas" / "alert.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    schemas = SchemaSet()
    posts = {s["post"]["id"]: s["post"] for s in packaged_scenario()["steps"] if "post" in s}
    assert len(posts) == 9
    for alert_id, alert in posts.items():
        assert list(validator.iter_errors(alert)) == [], alert_id
        assert schemas.problems("alert", alert) == [], alert_id
    cyrl, latn, sq = (
        posts["rs-cert-2026-0412"],
        posts["ba-cert-2026-0156"],
        posts["al-cert-2026-0315"],
    )
    assert cyrl["claims"][0]["language"] == "sr-Cyrl" and latn["claims"][0]["language"] == "sr-Latn"
    assert cyrl["claims"][0]["text"] != latn["claims"][0]["text"]
    assert normalise_claim(cyrl["claims"][0]["text"]) == normalise_claim(latn["claims"][0]["text"])
    assert fingerprint(cyrl) == fingerprint(latn) != fingerprint(sq)
    assert fingerprint(posts["al-cert-2026-0311"]) == fingerprint(posts["me-cert-2026-0087"])


def test_demo_refuses_a_folder_holding_data(tmp_path: Path) -> None:
    """--data-dir must be new or empty, so that no earlier run's alerts meet this one."""
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "appendonly.aof").write_text("x")
    done = run_demo("--no-wait", "--port", "0", "--data-dir", str(tmp_path / "old"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("alerthub demo: ") and "not an empty folder" in done.stderr
    assert "Traceback" not in done.stderr


def test_ctrl_c_stops_a_waiting_demo_and_its_redis(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the terminal's whole process group) on a demo waiting after its
    scenario stops the hub and the embedded Redis cleanly: exit 0, no errors logged."""
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hub",
                "demo",
                "--port",
                "0",
                "--pause",
                "0",
                "--data-dir",
                str(tmp_path / "data"),
            ],
            cwd=tmp_path,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own group, as a terminal's foreground job
        )
    try:
        wait_until(
            lambda: (
                "press Ctrl-C to stop" in out.read_text(encoding="utf-8")
                or process.poll() is not None
            ),
            30,
            what="the demo to finish its scenario",
        )
        text = out.read_text(encoding="utf-8")
        redis_url = re.search(r"embedded Redis at (\S+)", text)
        hub_url = re.search(r"hub at (\S+)", text)
        assert redis_url and hub_url, text + err.read_text()
        assert answers(redis_url[1]) and http_ok(hub_url[1] + "/healthz")
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not answers(redis_url[1])
    assert not http_ok(hub_url[1] + "/healthz")
    assert "stopping the hub" in out.read_text(encoding="utf-8")
    assert err.read_text(encoding="utf-8") == ""


def test_scenario_checks_name_every_problem() -> None:
    """A scenario with unknown nodes, a retraction of another node's alert and an unknown event
    type is refused with each problem named, before any hub starts."""
    nodes = ("al-cert", "rs-cert")
    data = {
        "subscriptions": {"al-cert": {"delivery": "sse"}, "zz-cert": {"delivery": "pull"}},
        "steps": [
            {"sender": "al-cert", "post": {"id": "a-1"}, "expect": {"al-cert": NEW}},
            {"sender": "rs-cert", "retract": "a-1", "expect": {"al-cert": "alert.gone"}},
            {"sender": "nobody", "post": {"id": "a-1"}, "expect": {}},
        ],
    }
    with pytest.raises(ScenarioError) as refused:
        parse_scenario(data, nodes)
    message = str(refused.value)
    for problem in (
        "subscriptions.zz-cert: no demo node zz-cert",
        "step 2: rs-cert can retract only an alert it posted earlier",
        "step 2: expect.al-cert must be one of",
        "step 3: sender must be a demo node, not 'nobody'",
        "step 3: alert a-1 is posted twice",
    ):
        assert problem in message


def test_step_mismatches_name_missing_extra_and_wrong_events() -> None:
    """What a partner got is compared with the step's expectation, each difference named."""
    scenario = parse_scenario(
        {
            "subscriptions": {n: {"delivery": "pull"} for n in ("al-cert", "rs-cert", "me-cert")},
            "steps": [
                {
                    "sender": "al-cert",
                    "post": {"id": "a-1"},
                    "expect": {"al-cert": NEW, "rs-cert": NEW},
                }
            ],
        },
        ("al-cert", "rs-cert", "me-cert"),
    )
    step = scenario.steps[0]
    got = {"al-cert": [CORR], "me-cert": [NEW]}
    assert step_mismatches(step, got, ("al-cert", "rs-cert", "me-cert")) == [
        "step 1: al-cert received alert.corroborated, expected alert.created",
        "step 1: me-cert received alert.created, expected nothing",
        "step 1: rs-cert received nothing, expected alert.created",
    ]
    assert step_mismatches(step, {"al-cert": [NEW], "rs-cert": [NEW]}, ("al-cert",)) == []
