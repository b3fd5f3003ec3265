"""Build hub/interop/data/galaxies.tsv: the MISP galaxy values of every MITRE ATT&CK technique
and DISARM technique, so that the MISP feed writes the galaxy tags MISP links to its clusters
(`misp-galaxy:mitre-attack-pattern="Spearphishing Link - T1566.002"`,
`misp-galaxy:disarm-techniques="Develop AI-Generated Text"`) and the import reads a DISARM tag,
whose value names no id, back to its technique.

    .venv/bin/pip install pymispgalaxies && .venv/bin/python scripts/build_galaxy_names.py

Source: the misp-galaxy clusters `mitre-attack-pattern` and `disarm-techniques` as the
`pymispgalaxies` package ships them (see hub/interop/data/README.md for their licences). The
hub reads the built file and needs neither.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "hub" / "interop" / "data" / "galaxies.tsv"
GALAXIES = ("mitre-attack-pattern", "disarm-techniques")
TECHNIQUE = re.compile(r"^T[0-9]{4}(\.[0-9]{3})?$")


def rows() -> list[tuple[str, str, str]]:
    clusters = resources.files("pymispgalaxies") / "data" / "misp-galaxy" / "clusters"
    found = []
    for galaxy in GALAXIES:
        data = json.loads((clusters / f"{galaxy}.json").read_text("utf-8"))
        for value in data["values"]:
            ids = (value.get("meta") or {}).get("external_id")
            ids = ids if isinstance(ids, list) else [ids]
            for technique in ids:
                if isinstance(technique, str) and TECHNIQUE.match(technique):
                    found.append((galaxy, technique, value["value"]))
    return sorted(set(found))


def main() -> None:
    lines = ["# galaxy\ttechnique\tvalue (scripts/build_galaxy_names.py)"]
    lines += ["\t".join(row) for row in rows()]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines) - 1} techniques written to {OUT}")


if __name__ == "__main__":
    main()
