"""The bounds of claim-text normalisation (hub/claim_text.py): its length and its work grow only
a few times the text's, whatever the text, and cutting a text into pieces changes nothing below
that bound. What the folding does to ordinary text is in tests/test_canon.py."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.ingest import claim_text
from hub.ingest.claim_text import (
    _FOLD,
    _JOINING_STARTERS,
    MAX_GROWTH,
    _normalise_in_pieces,
    _starts_afresh,
    normalise_claim,
    normalised_limit,
)

EXPANDING = "\ufdfa"  # 18 characters under NFKC


def whole(text: str) -> str:
    """normalise_claim as it was before its bound: every step over the whole text."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)
    text = unicodedata.normalize("NFKD", text).translate(_FOLD)
    return " ".join(text.split())


def cut(text: str) -> str:
    return whole(text)[: normalised_limit(len(text))].rstrip()


# Characters that composition joins across neighbours, that decompose into a non-starter, that
# grow a lot, and the region's letters, mixed with anything.
_TRICKY = st.text(
    st.one_of(
        st.sampled_from(
            "\u1100\u1161\u11a8\uac00\uac01\u3131\u314f\uffa1\u0cc6\u0cc2\u0cd5\u0cca\u0b47"
            "\u0b3e\u0438\u0306\u0334\u0301\u0323e\uff76\uff9e\u30ab\u3099"
            "\ufdfa\ufdfb\u2057\u2026\u00bd\u2167\u337f\u00df\u01c9\u0453\u045c\u0439 a.\u200b"
        ),
        st.characters(),
    ),
    max_size=80,
)


def test_an_expanding_claim_is_cut_at_the_limit() -> None:
    """5000 U+FDFA (90,000 characters under NFKC) normalise to at most three per character,
    the first ones of what the whole text normalises to."""
    text = EXPANDING * 5000
    out = normalise_claim(text)
    assert len(out) <= normalised_limit(len(text)) == 15_016
    assert out == cut(text)
    assert normalise_claim(out) == out


def test_an_expanding_claim_is_folded_only_up_to_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only as much of an expanding text is folded as its limit needs: the work, not just the
    result, stays a few times the text's length."""
    folded: list[int] = []
    fold = claim_text._fold

    def counting(piece: str) -> str:
        out = fold(piece)
        folded.append(len(out))
        return out

    monkeypatch.setattr(claim_text, "_fold", counting)
    text = EXPANDING * 5000
    normalise_claim(text)
    assert sum(folded) <= normalised_limit(len(text)) + 2 * MAX_GROWTH


@pytest.mark.parametrize(
    "text",
    [
        "НАТО гомила трупе код Звечана " * 160,
        "Љубљана, Њујорк, Џаковић, Ђоковић. " * 140,
        "Shqipëri çështje, Zvečan, Đoković " * 140,
        "대한민국 국회 " * 600,  # Hangul: three jamo per syllable
        "Ки\u0306ев, NFD: Zvec\u030cana " * 200,  # decomposed input takes the path in pieces
    ],
)
def test_ordinary_text_is_never_cut(text: str) -> None:
    """Text of the region's scripts (and Hangul, which grows the most), long or decomposed,
    normalises exactly as it did before the bound: its fingerprints do not change."""
    assert len(text) <= 5000
    assert normalise_claim(text) == whole(text)


@given(_TRICKY)
def test_pieces_fold_to_what_the_whole_text_does(text: str) -> None:
    """Folded in the smallest pieces the cuts allow, any text normalises to what the whole text
    normalises to, cut at its limit; and so does normalise_claim."""
    expected = cut(text)
    assert _normalise_in_pieces(text, growth=10**9) == expected
    assert _normalise_in_pieces(text, growth=2) == expected
    assert normalise_claim(text) == expected


@pytest.mark.parametrize(
    ("before", "ch"),
    [
        ("\u1100", "\u1161"),  # Hangul L + V
        ("\uac00", "\u11a8"),  # Hangul LV + T
        ("\u3131", "\u314f"),  # compatibility jamo: NFKD makes them L and V
        ("\u0cc6", "\u0cc2"),  # Kannada two-part vowel sign
        ("\u0cca", "\u0cd5"),
        ("\u30ab", "\uff9e"),  # halfwidth voiced mark: NFKD makes it a combining mark
        ("\u0438", "\u0306"),  # и + breve: й
    ],
)
def test_no_cut_where_nfkc_joins(before: str, ch: str) -> None:
    """A character that NFKC joins to the one before it is never a place to cut."""
    nfkc = unicodedata.normalize
    assert nfkc("NFKC", before + ch) != nfkc("NFKC", before) + nfkc("NFKC", ch)
    assert not _starts_afresh(ch)


@given(_TRICKY, _TRICKY, st.data())
def test_nfkc_never_joins_across_a_cut(before: str, after: str, data: st.DataObject) -> None:
    """Before a character where `_starts_afresh` allows a cut, NFKC of the whole is NFKC of
    the two parts: the property the pieces rely on, at the step that joins characters."""
    text = before + after
    cuts = [i for i in range(1, len(text)) if _starts_afresh(text[i])]
    if cuts:
        i = data.draw(st.sampled_from(cuts))
        nfkc = unicodedata.normalize
        assert nfkc("NFKC", text) == nfkc("NFKC", text[:i]) + nfkc("NFKC", text[i:])


@given(_TRICKY)
def test_a_bounded_result_is_a_fixed_point(text: str) -> None:
    """normalise_claim stays a fixed point on text that composes, decomposes and expands."""
    once = normalise_claim(text)
    assert len(once) <= normalised_limit(len(text))
    assert normalise_claim(once) == once


def test_the_tables_match_this_pythons_unicode() -> None:
    """The joining starters and the growth bounds that the cuts rely on are those of the
    unicodedata this Python carries (a newer Unicode may add to them)."""
    joining = {chr(cp) for cp in range(0x1161, 0x1176)} | {chr(cp) for cp in range(0x11A8, 0x11C3)}
    growth = 0
    growth_if_nfkc = 0
    for cp in range(0x110000):
        ch = chr(cp)
        decomposition = unicodedata.decomposition(ch)
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2 and not unicodedata.combining(chr(int(parts[1], 16))):
                joining.add(chr(int(parts[1], 16)))
        if 0xD800 <= cp < 0xE000 or not (decomposition or ch.casefold() != ch):
            continue
        steps = unicodedata.normalize("NFKC", ch).casefold().translate(_FOLD)
        steps_nfd = unicodedata.normalize("NFKD", steps)
        most = max(len(steps), len(steps_nfd))
        growth = max(growth, most)
        if unicodedata.is_normalized("NFKC", ch):
            growth_if_nfkc = max(growth_if_nfkc, most)
    assert joining == _JOINING_STARTERS
    assert growth == MAX_GROWTH
    assert growth_if_nfkc <= 4
