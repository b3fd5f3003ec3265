"""SchemaSet.problems: the fast and reference validators agree, and problems are well named."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import jsonschema
import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.ingest.validation import SCHEMA_NAMES, Problem, SchemaSet, schemas_dir

THREAT = json.loads(
    (schemas_dir() / "examples/alert/valid/api-threat-phishing.json").read_text("utf-8")
)
DISINFORMATION = json.loads(
    (schemas_dir() / "examples/alert/valid/api-disinformation-sr-cyrl.json").read_text("utf-8")
)
SCHEMA_SET = SchemaSet()


def _validators(name: str) -> tuple[Any, jsonschema.Draft202012Validator]:
    document = SCHEMA_SET.document(name)
    fast = jsonschema_rs.Draft202012Validator(document, validate_formats=True)
    reference = jsonschema.Draft202012Validator(
        document, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return fast, reference


FAST, REFERENCE = _validators("alert")


def _agree(document: object) -> None:
    fast = FAST.is_valid(document)
    assert fast == REFERENCE.is_valid(document), document
    assert (SCHEMA_SET.problems("alert", document) == []) == fast


def _with(base: dict[str, Any], **changes: object) -> dict[str, Any]:
    document = copy.deepcopy(base)
    document.update(changes)
    return document


ODD_DOCUMENTS: list[object] = [
    [],
    [THREAT],
    42,
    "alert",
    None,
    True,
    {},
    _with(THREAT, confidence="80"),
    _with(THREAT, confidence=80.0),
    _with(THREAT, confidence=80.5),
    _with(THREAT, confidence=True),
    _with(THREAT, confidence=None),
    _with(THREAT, confidence=10**40),
    _with(THREAT, revision=-(10**40)),
    _with(THREAT, title=""),
    _with(THREAT, title="   "),
    _with(THREAT, title="a\u0000b"),
    _with(THREAT, title="a\u007fb"),
    _with(THREAT, title="line\nbreak\ttab\r"),
    _with(THREAT, title="x" * 100_000),
    _with(THREAT, title="😀" * 300),
    _with(THREAT, title="😀" * 301),
    _with(THREAT, title=None),
    _with(THREAT, title=["a"]),
    _with(THREAT, id="al-cert\n"),
    _with(THREAT, id=""),
    _with(THREAT, id="a" * 129),
    _with(THREAT, tags=["t"] * 10_000),
    _with(THREAT, tags=[1] * 1000),
    _with(THREAT, indicators=[{"type": "domain", "value": "x.example"}] * 1001),
    _with(THREAT, indicators=[{"type": "domain", "value": "a.example", "nested": {"a": [{}]}}]),
    _with(THREAT, indicators=[{"type": "ipv6", "value": "fe80::1%eth0"}]),
    _with(THREAT, indicators=[{"type": "domain", "value": "xn--a.example"}]),
    _with(THREAT, indicators=[{"type": "domain", "value": "example.com."}]),
    _with(THREAT, indicators=[{"type": "email", "value": "a..b@mail.example"}]),
    _with(THREAT, indicators=[{"type": "url", "value": "https://e.example/\u00e4"}]),
    _with(THREAT, indicators=[{"type": "url", "value": "https://e.example/a\n"}]),
    _with(THREAT, observed_at="2016-12-31T23:59:60Z"),
    _with(THREAT, observed_at="0000-01-01T00:00:00Z"),
    _with(THREAT, observed_at="2026-11-21t10:00:00z"),
    _with(THREAT, observed_at="2026-11-21T10:00:00Z\n"),
    _with(THREAT, observed_at="２０２６-11-21T10:00:00Z"),
    _with(THREAT, target_countries=["rs"]),
    _with(THREAT, target_countries=["XK", "XK"]),
    _with(THREAT, share=None),
    _with(THREAT, share={"recipients": None}),
    _with(THREAT, junk={"deep": [[[[[{}]]]]]}),
    _with(DISINFORMATION, claims=[{"text": "x", "language": "sr-latn"}]),
    _with(DISINFORMATION, kind="threat"),
    _with(DISINFORMATION, media_hashes=[{"algorithm": "pdq", "value": "00"}]),
    _with(DISINFORMATION, languages=["٣٣"]),
]


@pytest.mark.parametrize(
    "document", ODD_DOCUMENTS, ids=[f"odd{i}" for i in range(len(ODD_DOCUMENTS))]
)
def test_fast_and_reference_validators_agree_on_odd_documents(document: object) -> None:
    """Both validators give the same verdict on malformed and borderline alert documents."""
    _agree(document)


def test_lone_surrogate_is_refused_with_its_pointer() -> None:
    """A lone surrogate (json.loads lets it through) is refused at its pointer, not accepted."""
    document = _with(THREAT, title="\ud800")
    with pytest.raises(ValueError):
        FAST.is_valid(document)
    assert REFERENCE.is_valid(document)  # Python's re sees one ordinary code point.
    assert SCHEMA_SET.problems("alert", document) == [
        Problem("/title", "unicode", "must be valid Unicode text (no lone surrogates)")
    ]


def test_non_json_values_are_never_accepted() -> None:
    """Python values with no JSON form (tuples, sets, bytes) are refused, not waved through."""
    for value in [(1, 2), {1, 2}, b"x"]:
        assert SCHEMA_SET.problems("alert", _with(THREAT, tags=value)) != []


def test_missing_title_names_the_property() -> None:
    """A missing required property is reported at its own pointer with rule `required`."""
    document = _with(THREAT)
    del document["title"]
    assert SCHEMA_SET.problems("alert", document) == [Problem("/title", "required", "is required")]


def test_number_as_string_is_a_type_problem() -> None:
    """`confidence: "80"` is a type problem at /confidence."""
    problems = SCHEMA_SET.problems("alert", _with(THREAT, confidence="80"))
    assert problems == [Problem("/confidence", "type", "must be an integer")]


def test_wrong_kind_field_says_which_kind_in_both_explanations() -> None:
    """A field of the other kind is named, with its kind, by the reference and the compiled
    explanation alike."""
    document = _with(THREAT, narrative="x")
    expected = [Problem("/narrative", "falseSchema", "is only allowed when kind is disinformation")]
    assert SCHEMA_SET.problems("alert", document) == expected
    assert SCHEMA_SET.problems("alert", document, thorough=False) == expected


def test_unknown_field_names_the_field() -> None:
    """An unknown top-level field is reported at its own pointer."""
    problems = SCHEMA_SET.problems("alert", _with(THREAT, foo=1, **{"a/b": 2}))
    assert problems == [
        Problem("/a~1b", "additionalProperties", "is not allowed here"),
        Problem("/foo", "additionalProperties", "is not allowed here"),
    ]


def test_bad_indicator_is_reported_once_at_its_value() -> None:
    """A bad threat field is reported at its value, not also as an unevaluated property."""
    indicators = [{"type": "domain", "value": f"ok{i}.example"} for i in range(10)]
    indicators += [{"type": "sha256", "value": "zz"}, {"type": "cve", "value": "CVE-1"}]
    problems = SCHEMA_SET.problems("alert", _with(THREAT, indicators=indicators))
    assert [(p.pointer, p.rule) for p in problems] == [
        ("/indicators/10/value", "pattern"),
        ("/indicators/11/value", "pattern"),
    ]


@pytest.mark.parametrize("value", ["yesterday", "2026-11-20 08:15:00Z", "2026-13-01T00:00:00Z"])
def test_a_bad_time_is_one_problem_not_two(value: str) -> None:
    """A bad date-time breaks both the pattern and the format of $defs/dateTime: it is reported
    once, by both explanations (the reference one names the form, the compiled one the format)."""
    bad = _with(THREAT, observed_at=value)
    assert SCHEMA_SET.problems("alert", bad) == [
        Problem(
            "/observed_at", "pattern", "must be an RFC 3339 date-time such as 2026-11-20T08:15:00Z"
        )
    ]
    assert [(p.pointer, p.rule) for p in SCHEMA_SET.problems("alert", bad, thorough=False)] == [
        ("/observed_at", "format")
    ]


def test_a_bad_url_is_one_problem_not_two() -> None:
    """A value that is no URL at all breaks the pattern and the format of $defs/url: one
    problem, saying what is expected."""
    bad = _with(DISINFORMATION, urls=["not a url"])
    assert SCHEMA_SET.problems("alert", bad) == [
        Problem("/urls/0", "pattern", "must be an http(s) URL")
    ]
    assert len(SCHEMA_SET.problems("alert", bad, thorough=False)) == 1


def test_a_real_date_check_stays_when_the_pattern_passes() -> None:
    """A date-time of the right shape that is no date (February 30) is still refused, by the
    format check: the date-time checker is installed without jsonschema's format extra."""
    problems = SCHEMA_SET.problems("alert", _with(THREAT, observed_at="2026-02-30T00:00:00Z"))
    assert [(p.pointer, p.rule) for p in problems] == [("/observed_at", "format")]


def test_upper_case_scheme_and_host_are_accepted_wherever_a_url_is() -> None:
    """Scheme and host are case-insensitive (RFC 3986): HTTPS://News.Example:443/x is a valid
    URL in an alert, a fact-check, a reference, an indicator and a webhook subscription."""
    url = "HTTPS://News.Example:443/x"
    alert = _with(
        DISINFORMATION,
        urls=[url, "Http://EXAMPLE.org/"],
        references=[{"url": url, "title": "t"}],
        claims=[{"text": "a claim", "language": "sr-Latn", "fact_check_url": url}],
    )
    assert SCHEMA_SET.problems("alert", alert) == []
    threat = _with(THREAT, indicators=[{"type": "url", "value": url}])
    assert SCHEMA_SET.problems("alert", threat) == []
    webhook = {"filter": {}, "delivery": {"type": "webhook", "url": url}}
    assert SCHEMA_SET.problems("subscription", webhook) == []
    assert SCHEMA_SET.problems("subscription-patch", {"url": url}) == []
    assert SCHEMA_SET.problems("alert", _with(DISINFORMATION, urls=["FTP://News.Example/x"]))


def test_problems_are_sorted_numerically_and_deduplicated() -> None:
    """Problems come sorted by pointer, with array indexes in numeric order."""
    tags = [f"ok{i}" for i in range(12)]
    tags[2] = "Bad"
    tags[11] = "Also Bad"
    problems = SCHEMA_SET.problems("alert", _with(THREAT, tags=tags, confidence=-1))
    pointers = [p.pointer for p in problems]
    assert pointers == ["/confidence", "/tags/2", "/tags/11"]


def test_huge_lists_of_bad_items_are_cut_short() -> None:
    """A body with thousands of wrong items yields a bounded problem list that says so."""
    problems = SCHEMA_SET.problems("alert", _with(THREAT, tags=[1] * 5000))
    assert len(problems) <= 101
    assert Problem("", "maxProblems", "more problems were not listed") in problems


def test_every_schema_name_loads_and_unknown_names_raise() -> None:
    """SchemaSet serves every listed schema and raises KeyError for others."""
    assert SCHEMA_SET.names() == SCHEMA_NAMES
    for name in SCHEMA_NAMES:
        assert SCHEMA_SET.document(name)["$id"].endswith(f"{name}.schema.json")
    with pytest.raises(KeyError):
        SCHEMA_SET.document("nope")
    with pytest.raises(KeyError):
        SCHEMA_SET.problems("nope", {})


def test_document_returns_a_copy() -> None:
    """Changing a returned schema document does not change the compiled schema set."""
    SCHEMA_SET.document("alert")["required"].append("x")
    assert "x" not in SCHEMA_SET.document("alert")["required"]


def test_schemas_dir_can_be_overridden(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """ALERTHUB_SCHEMAS_DIR moves where the schemas are read from."""
    monkeypatch.setenv("ALERTHUB_SCHEMAS_DIR", str(tmp_path))
    assert schemas_dir() == tmp_path


TEXT = st.text(
    alphabet=st.characters(exclude_categories=("Cs",)) | st.sampled_from("\x00\n\t\x1f\x7f"),
    max_size=30,
)
JSON_VALUES: st.SearchStrategy[object] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
TOKENS = st.sampled_from(
    [
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?(Z|[+-][0-9]{2}:[0-9]{2})\n?$",
        r"^https?://[a-zA-Z0-9.:\[\]@%-]{0,12}(/[a-zA-Z0-9%?#=&._~-]{0,8})?\n?$",
        r"^[a-zA-Z0-9-]{1,5}(\.[a-zA-Z0-9-]{1,5}){0,2}\.?\n?$",
        r"^[0-9a-fA-F:.%]{2,20}\n?$",
        r"^[0-9.]{7,16}\n?$",
        r"^[a-zA-Z]{1,4}(-[a-zA-Z0-9]{1,8}){0,3}\n?$",
    ]
).flatmap(lambda pattern: st.from_regex(pattern, fullmatch=True))
FIELD_TARGETS = [
    ("observed_at",),
    ("valid_until",),
    ("languages", 0),
    ("target_countries", 0),
    ("tags", 0),
    ("title",),
    ("id",),
    ("confidence",),
    ("revision",),
    ("share",),
    ("indicators", 0, "value"),
    ("indicators", 1, "value"),
    ("indicators", 2, "value"),
    ("indicators", 0),
    ("attack_patterns", 0),
]
INDICATOR_TYPES = st.sampled_from(["url", "domain", "ipv4", "ipv6", "email", "sha256", "cve"])


def _set(document: dict[str, Any], path: tuple[str | int, ...], value: object) -> None:
    """Puts `value` at `path`, creating (or replacing with) the containers the path needs."""
    target: Any = document
    for part, following in itertools.pairwise(path):
        fresh: Any = [] if isinstance(following, int) else {}
        if isinstance(part, int):
            while len(target) <= part:
                target.append(None)
        elif part not in target:
            target[part] = fresh
        if not isinstance(target[part], type(fresh)):
            target[part] = fresh
        target = target[part]
    last = path[-1]
    if isinstance(last, int):
        while len(target) <= last:
            target.append(None)
    target[last] = value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON_VALUES)
def test_validators_agree_on_random_json(value: object) -> None:
    """Random JSON values get the same verdict from both validators, for every schema."""
    for name in SCHEMA_NAMES:
        fast, reference = _validators(name) if name != "alert" else (FAST, REFERENCE)
        assert fast.is_valid(value) == reference.is_valid(value)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from([THREAT, DISINFORMATION]),
    path=st.sampled_from(FIELD_TARGETS),
    value=JSON_VALUES | TOKENS,
    indicator_type=INDICATOR_TYPES,
    drop=st.sampled_from([None, "title", "kind", "indicators", "claims", "tlp", "share"]),
)
def test_validators_agree_on_mutated_alerts(
    base: dict[str, Any],
    path: tuple[str | int, ...],
    value: object,
    indicator_type: str,
    drop: str | None,
) -> None:
    """Valid alerts with one field replaced or dropped get the same verdict from both validators."""
    document = copy.deepcopy(base)
    if drop is not None:
        document.pop(drop, None)
    _set(document, path, value)
    if path[0] == "indicators" and path[-1] == "value":
        document["indicators"][path[1]]["type"] = indicator_type
    _agree(document)


def test_validators_agree_on_the_http_bad_input_corpus() -> None:
    """Every body of the HTTP bad-input corpus that parses gets one verdict from both validators."""
    import orjson

    from tests.api.test_bad_input import CASES

    checked = 0
    for _name, body, *_ in CASES:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            continue
        _agree(document)
        checked += 1
    assert checked >= 15
