"""Claim similarity, pure (hub.ingest.similarity): folding, lemmas and features of one claim,
index scores and the threshold. The evaluation set's figures are asserted here only as a floor
well below the goals; the goals themselves live in benchmarks/claims/evaluate.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.ingest.similarity.lexicon import ekavian
from hub.ingest.similarity.signature import (
    DEFAULT_THRESHOLD,
    ClaimSignature,
    alert_claims,
    alert_match,
    claim_match,
    index_scores,
)
from hub.ingest.similarity.text import analyse
from hub.settings import Settings, SettingsError

BENCH = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "claims"
sys.path.insert(0, str(BENCH))

from evaluate import evaluate, load  # noqa: E402
from pairs import to_cyrillic  # noqa: E402
from stories import STORIES  # noqa: E402

SERBIAN = [str(s["sr"]) for s in STORIES]
EDITS = {
    "prefix": lambda t: "HITNO: " + t,
    "emoji": lambda t: f"🚨🚨 {t} ‼️",
    "hashtag": lambda t: t + " #istina #Kosovo",
    "source": lambda t: t + " (izvor: Telegram)",
    "cyrillic": to_cyrillic,
    "all": lambda t: f"ХИТНО 🚨 {to_cyrillic(t)}!!! #istina (izvor: Telegram)",
    "shout": str.upper,
    "reorder": lambda t: " ".join(t.split()[3:] + t.split()[:3]),
}


def claims(text: str, language: str = "sr-Latn") -> list[ClaimSignature]:
    return alert_claims(
        {"kind": "disinformation", "claims": [{"text": text, "language": language}]}
    )


def linked(a: list[ClaimSignature], b: list[ClaimSignature]) -> bool:
    """As the hub links them: a shared index score, then a match at the default threshold."""
    shared = set(index_scores(a)) & set(index_scores(b))
    return bool(shared) and alert_match(a, b, DEFAULT_THRESHOLD) is not None


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(SERBIAN), st.lists(st.sampled_from(sorted(EDITS)), min_size=1, max_size=3))
def test_a_claim_is_similar_to_itself_under_any_listed_edit(text: str, edits: list[str]) -> None:
    """Any chain of the edits copies make (prefix, emoji, hashtags, a trailing source, Cyrillic,
    capitals, reordered words) leaves a claim linked to its original."""
    edited = text
    for edit in edits:
        edited = EDITS[edit](edited)
    language = "sr-Cyrl" if "cyrillic" in edits or "all" in edits else "sr-Latn"
    assert linked(claims(text), claims(edited, language)), (text, edited)


_FAMILIES = {str(s["id"]): str(s["family"]) for s in STORIES}


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(STORIES),
    st.sampled_from(STORIES),
    st.sampled_from(["sr", "sq", "mk", "en"]),
    st.sampled_from(["sr", "sq", "mk", "en"]),
)
def test_different_claims_are_never_linked(a: dict, b: dict, la: str, lb: str) -> None:
    """Two different stories, in any two languages (also two about the same place or person),
    never reach the threshold."""
    if a["id"] == b["id"]:
        return
    tags = {"sr": "sr-Latn", "sq": "sq", "mk": "mk", "en": "en"}
    assert not linked(claims(str(a[la]), tags[la]), claims(str(b[lb]), tags[lb]))


_WORDS = st.text(alphabet="abcdefghijklmnoprstuvzčćšžđ", min_size=3, max_size=9)


@settings(max_examples=200, deadline=None)
@given(st.lists(_WORDS, min_size=3, max_size=15), st.lists(_WORDS, min_size=3, max_size=15))
def test_unrelated_word_salad_never_exceeds_the_threshold(x: list[str], y: list[str]) -> None:
    """Two texts whose words differ share no claim token and so are never linked."""
    if set(x) & set(y):
        return
    a, b = claims(" ".join(x)), claims(" ".join(y))
    match = alert_match(a, b, DEFAULT_THRESHOLD)
    assert match is None or match.via != "claim"


@given(st.text(max_size=300), st.sampled_from(["sr-Cyrl", "sq", "mk", "en", "de", "hr"]))
@settings(max_examples=200, deadline=None)
def test_any_text_gives_a_signature_without_raising(text: str, language: str) -> None:
    """Whatever the text, analysing it never raises and gives JSON-ready strings."""
    found = claims(text, language)
    for claim in found:
        assert all(isinstance(t, str) for t in claim.tokens | claim.features)
    assert all(s.isdigit() for s in index_scores(found))


def test_scripts_standards_and_reflexes_fold_to_one_form() -> None:
    """Cyrillic and Latin, ijekavian and ekavian, Croatian and Serbian words give one token
    set: "Dijete je popilo mlijeko u Prištini" and "Дете је попило млеко у Приштини"."""
    ijekavian = analyse("Dijete je popilo mlijeko u Prištini", "bs")
    cyrillic = analyse("Дете је попило млеко у Приштини", "sr-Cyrl")
    assert ijekavian.tokens == cyrillic.tokens
    assert ekavian("mlijeko") == ekavian("mleko") == "mleko"
    assert analyse("tisuća vojnika", "hr").tokens == analyse("hiljada vojnika", "sr").tokens


def test_names_numbers_and_dates_are_the_same_features_in_every_language() -> None:
    """Zvečan, 15 January and 500 euros are the same features in Serbian, Albanian, Macedonian
    and English, whatever the case endings."""
    tellings = [
        ("KFOR kod Zvečana 15. januara, 500 evra", "sr-Latn"),
        ("KFOR-i pranë Zveçanit më 15 janar, 500 euro", "sq"),
        ("КФОР кај Звечан на 15 јануари, 500 евра", "mk"),
        ("KFOR near Zvečan on 15 January, €500", "en"),
    ]
    wanted = {"o:kfor", "p:783770", "d:01-15", "n:500", "u:eur"}
    for text, language in tellings:
        assert wanted <= analyse(text, language).features, (language, text)


def test_one_shared_entity_or_common_words_never_link() -> None:
    """Claims that share one place and a few common words, or only broad names (Serbia,
    NATO), are not linked whatever the threshold."""
    a = claims("Kosovska policija uhapsila 12 Srba u Zvečanu")
    b = claims("Voda iz jezera kod Zvečana je otrovana")
    assert alert_match(a, b, 0.01) is None
    c = claims("NATO napada Srbiju", "sr-Latn")
    d = claims("NATO-ja sulmon Serbinë", "sq")
    assert alert_match(c, d, 0.01) is None


def test_a_known_word_does_not_name_a_place_by_its_stem() -> None:
    """ "rekao" (a form of "reći") names neither Rijeka (alias "Reka") nor the village Reçi."""
    assert not any(f.startswith("p:") for f in analyse("Kurti je rekao", "sr").features)


def test_the_threshold_decides() -> None:
    """A one-word change scores below 1 and links only up to that score."""
    scored = []
    for story in STORIES:
        a, b = claims(str(story["sr"])), claims(str(story["one_word"]))
        match = claim_match(a[0], b[0])
        assert match is not None
        scored.append((match.score, a, b))
    score, a, b = min(scored, key=lambda x: x[0])
    assert 0.5 <= score < 1
    assert alert_match(a, b, score) is not None
    assert alert_match(a, b, score + 0.01) is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [("0.1", "more than 0.2"), ("1.5", "at most 1"), ("half", "must be a number")],
)
def test_a_bad_threshold_setting_is_refused(raw: str, message: str) -> None:
    """ALERTHUB_SIMILARITY_THRESHOLD outside (0.2, 1] or not a number stops the hub at start."""
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"ALERTHUB_SIMILARITY_THRESHOLD": raw})
    assert Settings.from_env({}).similarity_threshold == DEFAULT_THRESHOLD


def test_the_evaluation_set_stays_above_a_floor() -> None:
    """On benchmarks/claims/pairs.jsonl: precision >= 0.9, recall >= 0.85 on edits and script
    changes, >= 0.4 on translations sharing two or more entities (goals: 0.97, 0.95, 0.6)."""
    report = evaluate(load(BENCH / "pairs.jsonl"), DEFAULT_THRESHOLD)
    assert report["pairs"] >= 300
    assert report["precision"] >= 0.9
    groups = report["by_group"]
    assert groups["edits"]["recall"] >= 0.85 and groups["script"]["recall"] >= 0.85
    assert groups["translations_2plus"]["recall"] >= 0.4
