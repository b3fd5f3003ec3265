"""Finding a key given twice in one JSON object. orjson, like most parsers, keeps the last one
(`{"tlp": "RED", "tlp": "GREEN"}` reads as GREEN), so a body whose meaning depends on which
copy a reader keeps is refused instead. Pure functions, no I/O.

Checking costs 5-10 ms for a 4 MiB batch (less than orjson's own parse for bodies of many short
strings, about as much for a few long ones): the body orjson parsed is written again with
orjson, and the colons of the two texts are counted. Only when the counts leave room for a
repeat is the body parsed again, by the standard library's parser, whose hook sees every key of
every object (several times slower).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import orjson

# The two spellings of an escaped colon in a JSON string. (Counting only "\u003" would be one
# pass fewer, but Go's encoder, for one, writes every "<" and ">" as \u003c and \u003e.)
_ESCAPED_COLONS = (b"\\u003a", b"\\u003A")
# orjson reads nesting up to 1024 levels; the standard library's parser counts each level
# against the recursion limit.
_MAX_DEPTH = 1024


def repeated_key(raw: bytes, parsed: Any) -> tuple[str, str] | None:
    """(JSON pointer of the object, the key) of the first object in `raw`, in document order,
    that gives a key more than once; None when no object does. `parsed` is orjson.loads(raw)."""
    if not _may_repeat(raw, parsed):
        return None
    return _find_repeat(raw)


def _may_repeat(raw: bytes, parsed: Any) -> bool:
    """False only when no object in `raw` repeats a key.

    Every member of an object has one colon outside strings; every other colon is inside a
    string, written as itself or escaped as \\u003a. orjson writes `parsed` with one colon per
    member it kept and every colon of its strings as itself. So, with R the members of `raw`, K
    those kept, C_raw and C_kept the colons inside the strings of each, and E the escaped ones:
        raw.count(":") - written.count(":") = (R - K) + (C_raw - C_kept) - E.
    A repeat drops members (R > K) and their strings (C_raw >= C_kept); without one both are
    equal. The occurrences of "\\u003a" and "\\u003A" in `raw` are at least E (they may also
    follow an escaped backslash), so the left side plus them is 0 only without repeats.
    """
    try:
        written = orjson.dumps(parsed)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (254 levels)
        return True
    escaped = sum(raw.count(colon) for colon in _ESCAPED_COLONS)
    return raw.count(b":") - written.count(b":") + escaped > 0


class _Repeats(dict[str, Any]):
    """An object as parsed, marked with the first key it gives twice."""

    key = ""


def _mark_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _Repeats(obj)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            marked.key = key
            break
        seen.add(key)
    return marked


def _find_repeat(raw: bytes) -> tuple[str, str] | None:
    with _recursion_room(_MAX_DEPTH):
        # Numbers are measured, not converted: their values do not matter here.
        value = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_mark_repeats, parse_int=len, parse_float=len
        )
    return _first_marked(value)


@contextlib.contextmanager
def _recursion_room(levels: int) -> Iterator[None]:
    """The recursion limit raised by `levels` while the block runs (no await inside it)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + levels)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def _first_marked(value: Any) -> tuple[str, str] | None:
    """(pointer, key) of the first _Repeats in document order, depth first."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        pointer, node = stack.pop()
        if isinstance(node, _Repeats):
            return pointer, node.key
        if isinstance(node, dict):
            children = [(f"{pointer}/{_escape(k)}", v) for k, v in node.items()]
        elif isinstance(node, list):
            children = [(f"{pointer}/{i}", v) for i, v in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))
    return None


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
