"""Structured logs: one summary line per request with a request id; no token ever logged."""

from __future__ import annotations

import io
import json
import logging

from structlog.testing import capture_logs

from hub.logs import configure_logging, get_logger
from tests.conftest import Api, threat_alert


async def test_one_summary_line_per_request_with_request_id(api: Api) -> None:
    """Each request ends in one request_finished event carrying method, path, status, request id."""
    await api.add_node("al-cert", "AL")
    with capture_logs() as logs:
        resp = await api.client.post(
            "/v1/alerts",
            json=threat_alert(),
            headers={**api.auth("al-cert"), "X-Request-ID": "req-123"},
        )
    assert resp.headers["X-Request-ID"] == "req-123"
    finished = [e for e in logs if e["event"] == "request_finished"]
    assert len(finished) == 1
    line = finished[0]
    assert line["status"] == 201 and line["method"] == "POST" and line["path"] == "/v1/alerts"


async def test_tokens_never_reach_the_logs(api: Api) -> None:
    """Neither node tokens nor the operator token appear in any log event."""
    token = await api.add_node("al-cert", "AL")
    with capture_logs() as logs:
        await api.post("al-cert", threat_alert())
        await api.client.get("/v1/nodes", headers=api.auth("operator"))
        await api.client.get("/v1/alerts", headers={"Authorization": f"Bearer {token}x"})
    text = json.dumps(logs, default=str)
    assert token not in text
    assert api.tokens["operator"] not in text


def test_json_lines_with_iso_utc_time_and_hidden_secrets() -> None:
    """The renderer writes one JSON object per line, UTC ISO timestamps, secrets masked."""
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        get_logger("test").info("alert_accepted", hub_id="X", token="ah_secret")
        logging.getLogger("aiohttp.server").warning("from stdlib")
    finally:
        configure_logging("info")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["event"] == "alert_accepted" and lines[0]["token"] == "***"
    assert lines[0]["timestamp"].endswith("Z")
    assert lines[1]["event"] == "from stdlib" and lines[1]["level"] == "warning"
