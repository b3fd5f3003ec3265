"""MISP galaxy tags of ATT&CK and DISARM techniques, as MISP spells them (data/galaxies.tsv),
so that MISP links the tags the feed writes to its galaxy clusters. Pure; the table is read once
per process, on first use."""

from __future__ import annotations

import functools
import re
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "galaxies.tsv"
ATTACK = "mitre-attack-pattern"
DISARM = "disarm-techniques"
_TECHNIQUE = re.compile(r"\b(T[0-9]{4}(?:\.[0-9]{3})?)\b")


@functools.cache
def _table() -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """(galaxy, technique) -> value, and (galaxy, value) -> technique."""
    values: dict[tuple[str, str], str] = {}
    techniques: dict[tuple[str, str], str] = {}
    for line in DATA.read_text("utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        galaxy, technique, value = line.split("\t")
        values[galaxy, technique] = value
        techniques.setdefault((galaxy, value), technique)
    return values, techniques


def galaxy_tag(galaxy: str, technique: str) -> str:
    """`misp-galaxy:<galaxy>="<value>"`: the cluster's own value where the table knows the
    technique, else the technique id itself (a tag MISP shows but links to no cluster)."""
    value = _table()[0].get((galaxy, technique), technique)
    return f'misp-galaxy:{galaxy}="{value}"'


def technique_of(galaxy: str, value: str) -> str | None:
    """The technique a galaxy tag's value names: the id in it (ATT&CK's values end with
    one), else the technique whose cluster has that value (DISARM's values are names)."""
    found = _TECHNIQUE.findall(value)
    if found:
        return found[-1]
    return _table()[1].get((galaxy, value.strip()))
