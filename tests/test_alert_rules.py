"""deploy/prometheus/alerthub-rules.yaml: a Prometheus rule file whose expressions parse as PromQL
(the promql-parser package) and name only metrics and labels a real hub exports on /metrics, as
Prometheus's own client parser reads them; its two set-up numbers agree with the defaults, and
deploy/README.md's PrometheusRule command wraps the same rules."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser as promql
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hub.settings import Settings
from tests.conftest import Api, unique_threat
from tests.docs.blocks import blocks

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerthub-rules.yaml"
REDIS_CONF = ROOT / "deploy" / "redis.conf"
DEPLOY_README = ROOT / "deploy" / "README.md"
APPLY = "| kubectl apply -f -"
SEVERITIES = {"critical", "warning"}
# Labels Prometheus attaches to every scraped series; the hub's exposition does not carry them.
TARGET_LABELS = frozenset({"job", "instance"})
# redis.conf's memory units: k, m, g are powers of 1000, kb, mb, gb of 1024.
REDIS_UNITS = {"": 1, "k": 10**3, "kb": 2**10, "m": 10**6, "mb": 2**20, "g": 10**9, "gb": 2**30}


@dataclasses.dataclass(frozen=True)
class Selector:
    """A metric a rule reads, with the labels it matches on or groups by."""

    name: str
    labels: frozenset[str]


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text("utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def rule(name: str) -> dict[str, Any]:
    (found,) = [r for r in rules() if r["alert"] == name]
    return found


def children(expr: Any) -> list[Any]:
    """The sub-expressions of one PromQL node."""
    if isinstance(expr, promql.BinaryExpr):
        return [expr.lhs, expr.rhs]
    if isinstance(expr, promql.AggregateExpr):
        return [expr.expr] + ([expr.param] if expr.param is not None else [])
    if isinstance(expr, promql.Call):
        return list(expr.args)
    if isinstance(expr, promql.MatrixSelector):
        return [expr.vector_selector]
    if isinstance(expr, promql.ParenExpr | promql.UnaryExpr | promql.SubqueryExpr):
        return [expr.expr]
    return []


def selectors(expr: Any, grouping: frozenset[str] = frozenset()) -> Iterator[Selector]:
    """Every metric selector in `expr` with the labels of its matchers and of the `by`/`on`
    clauses above it (`grouping`)."""
    if isinstance(expr, promql.VectorSelector):
        matched = {m.name for m in expr.matchers.matchers} - {"__name__"}
        yield Selector(expr.name, grouping | matched)
        return
    inner = grouping | modifier_labels(expr)
    for child in children(expr):
        yield from selectors(child, inner)


def modifier_labels(expr: Any) -> frozenset[str]:
    """The labels of an aggregation's `by`/`without` or a binary operator's `on`/`ignoring`."""
    if isinstance(expr, promql.AggregateExpr) and expr.modifier is not None:
        return frozenset(expr.modifier.labels)
    if isinstance(expr, promql.BinaryExpr) and expr.modifier is not None:
        matching = expr.modifier.matching
        return frozenset(matching.labels if matching is not None else ())
    return frozenset()


def numbers(expr: Any) -> Iterator[float]:
    if isinstance(expr, promql.NumberLiteral):
        yield expr.val
    for child in children(expr):
        yield from numbers(child)


def exported(text: str) -> dict[str, frozenset[str]]:
    """Sample name (with the _total, _bucket, _count, ... suffixes the parser reports) -> the
    label names seen on it."""
    seen: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            seen.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in seen.items()}


def redis_maxmemory() -> int:
    """`maxmemory` of deploy/redis.conf in bytes, with Redis's units (1gb = 1024**3)."""
    match = re.search(r"^maxmemory\s+(\d+)([a-z]*)\s*$", REDIS_CONF.read_text("utf-8"), re.M)
    assert match, "deploy/redis.conf sets maxmemory"
    return int(match[1]) * REDIS_UNITS[match[2].lower()]


# --- the file ----------------------------------------------------------------------------------


def test_rule_file_has_the_prometheus_shape() -> None:
    """groups -> rules, each an alert with expr, a `for` duration, a severity, a summary and a
    description; names are unique within the file."""
    doc = yaml.safe_load(RULES.read_text("utf-8"))
    assert set(doc) == {"groups"} and doc["groups"]
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"] and group["rules"]
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names)) and all(n.startswith("Alerthub") for n in names)
    for r in rules():
        assert set(r) == {"alert", "expr", "for", "labels", "annotations"}, r["alert"]
        assert isinstance(r["expr"], str) and r["expr"].strip(), r["alert"]
        assert re.fullmatch(r"\d+[smh]", r["for"]), r["alert"]
        assert r["labels"]["severity"] in SEVERITIES, r["alert"]
        assert set(r["annotations"]) == {"summary", "description"}, r["alert"]
        assert all(str(v).strip() for v in r["annotations"].values()), r["alert"]


@pytest.mark.parametrize("name", [r["alert"] for r in rules()])
def test_every_expression_parses_as_promql(name: str) -> None:
    """Each `expr` is PromQL that a PromQL parser accepts (unknown functions included)."""
    expr = promql.parse(rule(name)["expr"])
    assert list(selectors(expr)), f"{name} reads no metric"


def test_promql_check_catches_typos() -> None:
    """The check above is not vacuous: a misspelt function or an unclosed bracket is refused."""
    with pytest.raises(ValueError):
        promql.parse("rat(alerthub_http_requests_total[5m])")
    with pytest.raises(ValueError):
        promql.parse("sum(alerthub_redis_up")


def test_thresholds_follow_the_defaults() -> None:
    """The shard count is Settings' default ALERTHUB_FANOUT_SHARDS, and the memory alert fires
    at 85% of the maxmemory deploy/redis.conf sets."""
    shards = next(f.default for f in dataclasses.fields(Settings) if f.name == "fanout_shards")
    assert shards in set(numbers(promql.parse(rule("AlerthubFanoutShardsUnheld")["expr"])))
    memory = set(numbers(promql.parse(rule("AlerthubRedisMemoryHigh")["expr"])))
    assert memory == {0.85, redis_maxmemory()}


def test_readme_command_wraps_the_same_rules_in_a_prometheus_rule() -> None:
    """deploy/README.md's PrometheusRule command, run without its kubectl, prints one
    PrometheusRule whose spec holds the rule file's groups unchanged."""
    (block,) = [b for b in blocks(DEPLOY_README) if b.is_command and "PrometheusRule" in b.text]
    assert block.text.rstrip().endswith(APPLY)
    command = block.text.rstrip().removesuffix(APPLY)
    out = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
    ).stdout
    doc = yaml.safe_load(out)
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["metadata"]["namespace"] == "alerthub"
    assert doc["spec"] == yaml.safe_load(RULES.read_text("utf-8"))


# --- against a real hub ------------------------------------------------------------------------


async def test_every_metric_and_label_the_rules_use_is_exported(api: Api) -> None:
    """Each metric the rules read is a sample name of a real hub's /metrics, and each label they
    match on or group by is on that metric (or is one Prometheus adds at scrape)."""
    await api.add_node("al-cert", country="AL")
    await api.add_node("me-cert", country="ME")
    await api.subscribe("me-cert")  # the per-subscription gauges have one series each
    status, _ = await api.post("al-cert", unique_threat("rules-1"))
    assert status == 201
    resp = await api.client.get("/metrics", headers=api.auth("operator"))
    assert resp.status == 200, await resp.text()
    metrics = exported(await resp.text())

    used = [s for r in rules() for s in selectors(promql.parse(r["expr"]))]
    assert {s.name for s in used} >= {"alerthub_redis_up", "alerthub_http_requests_total"}
    for selector in used:
        assert selector.name in metrics, f"{selector.name} is not on /metrics"
        unknown = selector.labels - metrics[selector.name] - TARGET_LABELS
        assert not unknown, f"{selector.name} has no label {sorted(unknown)}"
