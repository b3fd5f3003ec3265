"""Checks request bodies against the JSON Schemas in `schemas/` and explains what is wrong.

Two validators read the same schema files. `jsonschema_rs` (compiled, format checks on) answers
"is this valid?" quickly; only when it says no does the reference Python `jsonschema` run, to list
every problem with a JSON pointer, the failing keyword and a short sentence.

The schemas are written so that both validators agree (see `$defs/line` and `$defs/dateTime` in
alert.schema.json, and why domain and email indicators use patterns, not formats). Where they might
disagree, the fast validator's "invalid" wins: the body is refused, never accepted on the word of
one validator against the other. Python strings with lone surrogates (which `json.loads` produces
from `"\\ud800"`, but orjson refuses) cannot be handed to the Rust validator at all; they are
refused with rule "unicode" at the string's pointer.

`jsonschema` is imported only when a reference validator is first needed: its import takes
0.2 s, and 1.4 s more where `rfc3987_syntax` is installed (jsonschema's format-nongpl extra
brings it; it builds a grammar when imported). The CLI's help, its `nodes` commands and valid
bodies never pay that; the service builds its reference validators once, at start-up
(`prepare_explanations`).
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import orjson

if TYPE_CHECKING:
    import jsonschema

SCHEMA_NAMES: tuple[str, ...] = (
    "alert",
    "batch",
    "fact-check",
    "node",
    "retract",
    "subscription",
    "subscription-patch",
)

# Past this many problems the list is cut short: a 256 KiB array of wrong items would otherwise
# produce a six-figure list and a reply larger than the request.
MAX_PROBLEMS = 100
# Refused documents up to this size (as JSON) are explained by the reference validator.
REFERENCE_EXPLAINS_UP_TO = 4096

_TYPE_WORDS = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}
_FORMAT_WORDS = {
    "date-time": "an RFC 3339 date-time such as 2026-11-20T08:15:00Z",
    "uri": "a valid absolute URI",
    "ipv4": "a valid IPv4 address",
    "ipv6": "a valid IPv6 address",
    "hostname": "a valid host name",
}


@dataclass(frozen=True, slots=True)
class Problem:
    pointer: str
    rule: str
    message: str


_TOO_DEEP = Problem("", "maxDepth", "nests deeper than the hub accepts")


def schemas_dir() -> pathlib.Path:
    """The folder of `<name>.schema.json` files: $ALERTHUB_SCHEMAS_DIR, else the copy a wheel
    install ships inside the package (hub/schemas/), else the source tree's schemas/."""
    override = os.environ.get("ALERTHUB_SCHEMAS_DIR")
    if override:
        return pathlib.Path(override)
    here = pathlib.Path(__file__).resolve().parent.parent
    packaged = here / "schemas"
    return packaged if packaged.is_dir() else here.parent / "schemas"


class SchemaSet:
    """Every schema in SCHEMA_NAMES, read and compiled once (the compiled validator refuses a
    schema that breaks its meta-schema); the reference validators are built on first need."""

    def __init__(self, directory: pathlib.Path | None = None) -> None:
        folder = directory if directory is not None else schemas_dir()
        self._documents: dict[str, dict[str, Any]] = {}
        self._fast: dict[str, Any] = {}
        self._reference: dict[str, jsonschema.Draft202012Validator] = {}
        for name in SCHEMA_NAMES:
            document = json.loads((folder / f"{name}.schema.json").read_text(encoding="utf-8"))
            self._documents[name] = document
            self._fast[name] = jsonschema_rs.Draft202012Validator(document, validate_formats=True)

    def prepare_explanations(self) -> None:
        """Build every reference validator now (a service calls this at start-up, so that its
        first refused body does not wait for the import of jsonschema)."""
        for name in SCHEMA_NAMES:
            self._reference_validator(name)

    def _reference_validator(self, name: str) -> jsonschema.Draft202012Validator:
        validator = self._reference.get(name)
        if validator is None:
            from jsonschema import Draft202012Validator  # slow: see the module's docstring

            validator = Draft202012Validator(
                self._documents[name], format_checker=Draft202012Validator.FORMAT_CHECKER
            )
            self._reference[name] = validator
        return validator

    def names(self) -> tuple[str, ...]:
        return SCHEMA_NAMES

    def document(self, name: str) -> dict[str, Any]:
        """A copy of the raw schema document; KeyError for an unknown name."""
        return copy.deepcopy(self._documents[name])

    def problems(self, name: str, instance: object, thorough: bool = True) -> list[Problem]:
        """[] when `instance` is valid, else its problems by pointer (at most MAX_PROBLEMS).

        The reference validator explains a refused document when `thorough` and the document is
        small (REFERENCE_EXPLAINS_UP_TO bytes as JSON: every ordinary alert). Its cost grows
        faster than the document (0.8 s for an alert of 1000 indicators, mostly uniqueItems
        over objects), so a larger document, or one past a caller's budget, is
        explained by the compiled validator's own error list: the same pointers and rules, its
        own sentences.
        """
        fast = self._fast[name]
        try:
            if fast.is_valid(instance):
                return []
        except ValueError as e:
            if "recursion" in str(e).lower():
                return [_TOO_DEEP]
            # UnicodeEncodeError: a lone surrogate cannot become a Rust string.
            found = list(_surrogate_problems(instance, ""))
            if not found:
                return [Problem("", "schema", "cannot be checked against the schema")]
            found += self._reference_problems(name, instance)
            return _sorted_unique(found)
        try:
            if thorough and _json_size(instance) <= REFERENCE_EXPLAINS_UP_TO:
                found = self._reference_problems(name, instance)
            else:
                found = self._compiled_problems(name, instance)
        except (RecursionError, ValueError):
            # Nesting past either validator's recursion limit: say so rather than fail.
            return [_TOO_DEEP]
        if not found:
            # The fast validator refused what the reference accepts. Accepting would let a body
            # through that one of the two checks calls invalid; refusing is the safe side, and the
            # rule name "schema" marks it as a validator disagreement to report as a bug.
            return [Problem("", "schema", "does not match the schema")]
        return _sorted_unique(found)

    def _compiled_problems(self, name: str, instance: object) -> list[Problem]:
        found: list[Problem] = []
        for count, error in enumerate(self._fast[name].iter_errors(instance)):
            if count == MAX_PROBLEMS:
                found.append(Problem("", "maxProblems", "more problems were not listed"))
                break
            at = _pointer(error.instance_path)
            kind = error.kind
            rule = kind.name
            if rule == "required":
                found.append(Problem(f"{at}/{_pointer([kind.property])[1:]}", rule, "is required"))
            elif rule == "falseSchema":
                found.append(self._wrong_kind(name, error.instance_path))
            elif rule in ("unevaluatedProperties", "additionalProperties"):
                found.extend(
                    Problem(at + _pointer([extra]), rule, "is not allowed here")
                    for extra in kind.unexpected
                )
            else:
                found.append(Problem(at, rule, _shorten(error.message)))
        return _one_per_value(found, keep="format")

    def _reference_problems(self, name: str, instance: object) -> list[Problem]:
        found: list[Problem] = []
        for count, error in enumerate(self._reference_validator(name).iter_errors(instance)):
            if count == MAX_PROBLEMS:
                found.append(Problem("", "maxProblems", "more problems were not listed"))
                break
            if error.validator is None and error.schema is False:
                # A `false` subschema: a field of the other kind (see alert.schema.json).
                # jsonschema leaves the path of a `false` schema's error empty; those fields are
                # top-level, so the key is the one holding that very value.
                path = (
                    list(error.absolute_path)
                    or [
                        k
                        for k, v in (instance.items() if isinstance(instance, Mapping) else ())
                        if v is error.instance
                    ][:1]
                )
                found.append(self._wrong_kind(name, path))
            else:
                found.extend(_explain(error))
        return _one_per_value(found, keep="pattern")

    def _wrong_kind(self, name: str, path: Any) -> Problem:
        parts = list(path)
        key = parts[-1] if parts else ""
        return Problem(_pointer(parts), "falseSchema", _not_allowed(key, self._documents[name]))


def _json_size(instance: object) -> int:
    try:
        return len(orjson.dumps(instance))
    except (TypeError, orjson.JSONEncodeError):
        return REFERENCE_EXPLAINS_UP_TO + 1


def _shorten(message: str, limit: int = 200) -> str:
    """The compiled validator quotes the offending value; a 50 KB title must not come back."""
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _pointer(parts: Iterator[object] | Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _sort_key(problem: Problem) -> tuple[object, ...]:
    segments: list[tuple[int, int, str]] = []
    for part in problem.pointer.split("/")[1:]:
        numeric = part.isascii() and part.isdigit()
        segments.append((0, int(part), "") if numeric else (1, 0, part))
    return (segments, problem.rule, problem.message)


def _one_per_value(found: list[Problem], keep: str) -> list[Problem]:
    """One problem, not two, for a value that breaks both the pattern and the format of its
    definition (`$defs/url` and `$defs/dateTime` carry both, to keep the two validators in
    agreement): `keep` names the more useful one. The reference validator's pattern sentence
    names the expected form by the definition's title ("must be an http(s) URL"); the compiled
    validator's would quote the regular expression, its format sentence does not."""
    drop = "format" if keep == "pattern" else "pattern"
    pointers = {p.pointer for p in found if p.rule == keep}
    return [p for p in found if p.rule != drop or p.pointer not in pointers]


def _sorted_unique(found: list[Problem]) -> list[Problem]:
    return sorted(set(found), key=_sort_key)


def _surrogate_problems(value: object, pointer: str) -> Iterator[Problem]:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            yield Problem(pointer, "unicode", "must be valid Unicode text (no lone surrogates)")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            child = pointer + _pointer([key])
            if isinstance(key, str):
                yield from _surrogate_problems(key, child)
            yield from _surrogate_problems(item, child)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _surrogate_problems(item, f"{pointer}/{index}")


def _explain(error: jsonschema.ValidationError) -> list[Problem]:
    """One jsonschema error as Problems; `required` and unknown properties name the property."""
    at = _pointer(error.absolute_path)
    rule = str(error.validator)
    value = error.validator_value
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    instance = error.instance
    if rule == "required" and isinstance(instance, Mapping):
        return [
            Problem(at + _pointer([p]), rule, "is required") for p in value if p not in instance
        ] or [Problem(at, rule, "is required")]
    if rule == "additionalProperties" and isinstance(instance, Mapping):
        known = schema.get("properties", {})
        extra = [key for key in instance if key not in known]
        return [Problem(at + _pointer([k]), rule, "is not allowed here") for k in extra]
    if rule == "unevaluatedProperties" and isinstance(instance, Mapping):
        extra = _unevaluated_keys(error.message, instance)
        if extra is None:
            return [Problem(at, rule, "has properties that are not allowed here")]
        return [Problem(at + _pointer([k]), rule, _not_allowed(k, schema)) for k in extra]
    return [Problem(at, rule, _message(rule, value, schema))]


def _unevaluated_keys(message: str, instance: Mapping[str, object]) -> list[str] | None:
    """The keys jsonschema names in its message, or None when they cannot be told apart."""
    # jsonschema lists them as "(<repr>, <repr> were unexpected)", sorted by str; there is no
    # structured attribute, so rebuild that text from the instance's keys and check it matches.
    start = message.find("(")
    end = max(message.rfind(" was unexpected)"), message.rfind(" were unexpected)"))
    if start < 0 or end < 0:
        return None
    listed = message[start + 1 : end]
    keys = [k for k in sorted(instance, key=str) if repr(k) in listed]
    return keys if ", ".join(repr(k) for k in keys) == listed else None


def _not_allowed(key: str, schema: Mapping[str, Any]) -> str:
    """Names the kind a kind-specific property belongs to, from the schema's `if kind` branches."""
    for branch in schema.get("allOf", ()):
        kind = branch.get("if", {}).get("properties", {}).get("kind", {}).get("const")
        declared = branch.get("then", {}).get("properties", {})
        if kind and key in declared and declared[key] is not False:
            return f"is only allowed when kind is {kind}"
    return "is not allowed here"


def _message(rule: str, value: Any, schema: Mapping[str, Any]) -> str:
    title = schema.get("title")
    match rule:
        case "type":
            types = value if isinstance(value, list) else [value]
            return "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types)
        case "minLength":
            return "must not be empty" if value == 1 else f"must be at least {value} characters"
        case "maxLength":
            return f"must be at most {value} characters"
        case "minItems":
            return "must not be empty" if value == 1 else f"must have at least {value} items"
        case "maxItems":
            return f"must have at most {value} items"
        case "uniqueItems":
            return "must not contain duplicates"
        case "minimum":
            return f"must be at least {value}"
        case "maximum":
            return f"must be at most {value}"
        case "const":
            return f"must be {json.dumps(value)}"
        case "enum":
            if title:
                return f"must be {_a(title)}"
            return "must be one of: " + ", ".join(json.dumps(v) for v in value)
        case "pattern":
            if title == "text":
                return "must not contain NUL or other control characters"
            return f"must be {_a(title)}" if title else f"must match {value}"
        case "not":
            return "must not contain control characters or line breaks"
        case "format":
            return "must be " + _FORMAT_WORDS.get(value, f"a valid {value}")
        case "anyOf":
            options = [s.get("required") for s in value if isinstance(s, Mapping)]
            if options and all(isinstance(o, list) and len(o) == 1 for o in options):
                return "needs at least one of: " + ", ".join(o[0] for o in options)
            return f"must be {_a(title)}" if title else "does not match any allowed form"
        case _:
            return f"breaks the {rule} rule"


def _a(title: str) -> str:
    sounds_like_vowel = title[0] in "aeiouAEIOU" or title.startswith(("RFC", "MD5", "http"))
    return ("an " if sounds_like_vowel else "a ") + title
