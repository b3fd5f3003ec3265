"""Keys given twice in one JSON object (hub/json_keys.py): found at any depth, in any spelling,
and never reported where there is none."""

from __future__ import annotations

import json
import random

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.json_keys import repeated_key


def find(raw: bytes) -> tuple[str, str] | None:
    return repeated_key(raw, orjson.loads(raw))


@pytest.mark.parametrize(
    ("raw", "found"),
    [
        (b'{"tlp": "RED", "tlp": "GREEN"}', ("", "tlp")),
        (b'{"tlp": "RED", "\\u0074lp": "GREEN"}', ("", "tlp")),  # the same key, escaped
        (b'{"a": {"b": 1, "b": 1}}', ("/a", "b")),  # even with the same value
        (b'{"alerts": [{"id": "x"}, {"share": {"r": [], "w": [], "r": ["RS"]}}]}',
         ("/alerts/1/share", "r")),
        (b'{"a/b": {"~": [{"k": ":", "k": "\\u003a"}]}}', ("/a~1b/~0/0", "k")),
        (b'{"x": {"k": 1, "k": 2}, "k": 1, "k": 2}', ("", "k")),  # the outer object comes first
        (b'{"a": "\\\\u003a"}', None),  # an escaped backslash, then the text u003a
        (b'{"a": "\\u003A:", "b": {"c": ":"}}', None),
        (b'{"a": ' + b"[" * 1000 + b'{"z": 1, "z": 2}' + b"]" * 1000 + b"}",
         ("/a" + "/0" * 1000, "z")),
        (b'{"a": ' + b"[" * 1000 + b'{"z": 1, "y": 2}' + b"]" * 1000 + b"}", None),
    ],
)  # fmt: skip
def test_repeated_keys_are_found(raw: bytes, found: tuple[str, str] | None) -> None:
    """The first object that repeats a key is named by its pointer, at any depth and however
    its keys are spelled; bodies without a repeat, colons and escapes included, pass."""
    assert find(raw) == found


class Obj(list):
    """A JSON object as the pairs it is written with, repeats allowed."""


_keys = st.text(st.sampled_from('ab:/~"\\é\u2028'), max_size=3)
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.sampled_from('x:"\\/u003aA\u00e9\U0001f600'), max_size=8),
)
_trees = st.recursive(
    _leaves,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.lists(st.tuples(_keys, kids), max_size=4).map(Obj)
    ),
    max_leaves=25,
)


def write(node: object, rnd: random.Random) -> str:
    """JSON text of `node`, each string spelled one of the ways JSON allows, at random."""
    if isinstance(node, Obj):
        members = (f"{write_str(k, rnd)}:{write(v, rnd)}" for k, v in node)
        return "{" + rnd.choice([",", ", ", " ,\n"]).join(members) + "}"
    if isinstance(node, list):
        return "[" + ",".join(write(item, rnd) for item in node) + "]"
    if isinstance(node, str):
        return write_str(node, rnd)
    return json.dumps(node)


def write_str(text: str, rnd: random.Random) -> str:
    out = []
    for ch in text:
        if ch == ":":
            out.append(rnd.choice([":", "\\u003a", "\\u003A"]))
        else:
            spelled = json.dumps(ch, ensure_ascii=rnd.random() < 0.5)[1:-1]
            out.append(rnd.choice([spelled, f"\\u{ord(ch):04x}"]) if ord(ch) < 0x10000 else spelled)
    return '"' + "".join(out) + '"'


def first_repeat(node: object, pointer: str = "") -> tuple[str, str] | None:
    """The reference: a plain walk over the pairs as written."""
    if isinstance(node, Obj):
        seen: set[str] = set()
        for key, _ in node:
            if key in seen:
                return pointer, key
            seen.add(key)
        children = [(pointer + "/" + k.replace("~", "~0").replace("/", "~1"), v) for k, v in node]
    elif isinstance(node, list):
        children = [(f"{pointer}/{i}", v) for i, v in enumerate(node)]
    else:
        return None
    for child_pointer, child in children:
        found = first_repeat(child, child_pointer)
        if found is not None:
            return found
    return None


@given(_trees, st.randoms(use_true_random=False))
def test_repeated_key_agrees_with_a_plain_walk(tree: object, rnd: random.Random) -> None:
    """On any document, spelled any way, repeated_key finds exactly the first repeat a walk
    over the written pairs finds: never one that is not there, never missing one."""
    raw = write(tree, rnd).encode()
    assert find(raw) == first_repeat(tree)
