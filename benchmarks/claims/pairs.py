"""Build benchmarks/claims/pairs.jsonl, the labelled evaluation set, from stories.py.

    .venv/bin/python benchmarks/claims/pairs.py

Each line: {"kind", "group", "label" (1: the same claim, 0: not), "story_a", "story_b",
"a": {"text", "language"}, "b": {...}, "shared_entities"}. Positives pair a story's Serbian
telling with: copies edited the way Telegram, X and portals edit them (prefix, emoji, hashtags,
a trailing source, all of these, one word changed, words reordered); its Cyrillic spelling;
its Croatian and ijekavian (Bosnian or Montenegrin) tellings; its Albanian, Macedonian and
English translations (and Albanian with Macedonian). Negatives pair different stories of one
family (the same place or person: the hard negatives), in the same and in different languages,
and stories of different families (unrelated). Deterministic: the same file every run.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stories import STORIES  # noqa: E402

_CYRILLIC = [("lj", "љ"), ("nj", "њ"), ("dž", "џ"), ("Lj", "Љ"), ("Nj", "Њ"), ("Dž", "Џ"),
             ("LJ", "Љ"), ("NJ", "Њ"), ("DŽ", "Џ")]  # fmt: skip
_LETTERS = dict(
    zip(
        "abvgdđežzijklmnoprstćufhcčšABVGDĐEŽZIJKLMNOPRSTĆUFHCČŠ",
        "абвгдђежзијклмнопрстћуфхцчшАБВГДЂЕЖЗИЈКЛМНОПРСТЋУФХЦЧШ",
        strict=True,
    )
)
HASHTAGS = ["#istina", "#Srbija #Kosovo", "#hitno #podeli", "#NATO", "#vesti"]


def to_cyrillic(text: str) -> str:
    """Serbian Latin spelled in Cyrillic (digraphs first); Latin-only acronyms stay Latin."""
    words = []
    for word in text.split(" "):
        if word.isupper() and len(word) > 1 and word.isalpha():
            words.append(word)  # KFOR, NATO, SAD stay as written on the region's portals
            continue
        for latin, cyrillic in _CYRILLIC:
            word = word.replace(latin, cyrillic)
        words.append("".join(_LETTERS.get(ch, ch) for ch in word))
    return " ".join(words)


def reorder(text: str) -> str:
    """The clauses swapped, or the last three words moved to the front."""
    if ", " in text:
        head, tail = text.split(", ", 1)
        return f"{tail[0].upper()}{tail[1:]}, {head[0].lower()}{head[1:]}"
    words = text.split()
    return " ".join(words[-3:] + words[:-3])


def side(text: str, language: str) -> dict[str, str]:
    return {"text": text, "language": language}


def positives(index: int, story: dict) -> list[dict]:
    sr = str(story["sr"])
    tag = HASHTAGS[index % len(HASHTAGS)]
    edits = {
        "edit_prefix": "HITNO: " + sr,
        "edit_emoji": f"🚨🚨 {sr} ‼️",
        "edit_hashtag": f"{sr} {tag}",
        "edit_source": f"{sr} (izvor: Telegram)",
        "edit_combo": f"HITNO 🚨 {sr}!!! {tag} (izvor: Telegram)",
        "edit_one_word": str(story["one_word"]),
        "edit_reorder": reorder(sr),
    }
    out = [(kind, side(sr, "sr-Latn"), side(text, "sr-Latn")) for kind, text in edits.items()]
    cyrillic = to_cyrillic(sr)
    out.append(("script_cyrillic", side(sr, "sr-Latn"), side(cyrillic, "sr-Cyrl")))
    out.append(("script_cyrillic_edit", side("ХИТНО: " + cyrillic + " 🚨", "sr-Cyrl"),
                side(sr + " " + tag, "sr-Latn")))  # fmt: skip
    out.append(("standard_hr", side(sr, "sr-Latn"), side(str(story["hr"]), "hr")))
    if "cnr" in story:
        language = "cnr" if index % 2 else "bs"
        out.append(("standard_ijekavian", side(sr, "sr-Latn"), side(str(story["cnr"]), language)))
    for language in ("sq", "mk", "en"):
        out.append((f"translation_{language}", side(sr, "sr-Latn"),
                    side(str(story[language]), language)))  # fmt: skip
    out.append(("translation_sq_mk", side(str(story["sq"]), "sq"), side(str(story["mk"]), "mk")))
    return [
        {"kind": kind, "label": 1, "story_a": story["id"], "story_b": story["id"], "a": a, "b": b}
        for kind, a, b in out
    ]


TELLINGS = [("sr", "sr-Latn"), ("sq", "sq"), ("mk", "mk"), ("en", "en")]


def negatives(rng: random.Random) -> list[dict]:
    out = []
    for x, y in itertools.combinations(STORIES, 2):
        same_family = x["family"] == y["family"]
        if same_family:
            combos = [("sr", "sr"), ("sr", "sq"), ("sr", "mk"), ("sq", "mk"), ("en", "sr"),
                      ("sq", "sq"), ("mk", "mk")]  # fmt: skip
            kind = "hard_negative"
        elif rng.random() < 0.15:
            combos = [rng.choice([("sr", "sr"), ("sr", "sq"), ("mk", "sr"), ("sq", "mk")])]
            kind = "unrelated"
        else:
            continue
        languages = dict(TELLINGS)
        for a, b in combos:
            out.append({"kind": kind, "label": 0, "story_a": x["id"], "story_b": y["id"],
                        "a": side(str(x[a]), languages[a]),
                        "b": side(str(y[b]), languages[b])})  # fmt: skip
    return out


GROUPS = {
    "edit_": "edits",
    "script_": "script",
    "standard_": "standards",
    "translation_": "translations",
    "hard_negative": "hard_negatives",
    "unrelated": "unrelated",
}


def group_of(kind: str) -> str:
    return next(g for prefix, g in GROUPS.items() if kind.startswith(prefix))


def build() -> list[dict]:
    rng = random.Random(20)
    pairs = [p for i, story in enumerate(STORIES) for p in positives(i, story)]
    pairs += negatives(rng)
    entities = {s["id"]: len(s["entities"]) for s in STORIES}
    for pair in pairs:
        pair["group"] = group_of(pair["kind"])
        if pair["label"] == 1:
            pair["shared_entities"] = entities[pair["story_a"]]
            if pair["group"] == "translations":
                pair["group"] = (
                    "translations_2plus" if pair["shared_entities"] >= 2 else "translations_1"
                )
    return pairs


def main() -> None:
    pairs = build()
    with (HERE / "pairs.jsonl").open("w", encoding="utf-8") as out:
        for pair in pairs:
            out.write(json.dumps(pair, ensure_ascii=False, sort_keys=True) + "\n")
    counts: dict[str, int] = {}
    for pair in pairs:
        counts[pair["kind"]] = counts.get(pair["kind"], 0) + 1
    print(json.dumps({"pairs": len(pairs), "by_kind": counts}, indent=1))


if __name__ == "__main__":
    main()
