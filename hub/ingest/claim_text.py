"""Claim text folded across scripts, so that one Serbian sentence written in Cyrillic and in Latin,
or with other case, diacritics, punctuation and spacing, compares equal. Pure, stdlib only."""

from __future__ import annotations

import unicodedata
from typing import Any

# -- claim text ----------------------------------------------------------------------------------

# Serbian (official Latin alphabet) and Macedonian Cyrillic, plus the Russian, Ukrainian, Belarusian
# and Bulgarian letters that turn up in the region, written directly in their folded form (the form
# the Latin spelling reaches once its diacritics are dropped: ž→z, č→c, ć→c, š→s, đ→dj, dž→dz).
# Precomposed letters whose NFKD decomposition would lose the transliteration (ѓ, ќ, й) are listed
# here so they are mapped before decomposition. ъ and ь (signs, not sounds, in Russian) vanish.
_CYRILLIC = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "ђ": "dj",
    "е": "e",
    "ж": "z",
    "з": "z",
    "и": "i",
    "ј": "j",
    "к": "k",
    "л": "l",
    "љ": "lj",
    "м": "m",
    "н": "n",
    "њ": "nj",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "ћ": "c",
    "у": "u",
    "ф": "f",
    "х": "h",
    "ц": "c",
    "ч": "c",
    "џ": "dz",
    "ш": "s",
    # Macedonian
    "ѓ": "gj",
    "ќ": "kj",
    "ѕ": "dz",
    "ѐ": "e",
    "ѝ": "i",
    # Russian, Ukrainian, Belarusian, Bulgarian
    "й": "j",
    "ё": "e",
    "ы": "y",
    "э": "e",
    "ю": "ju",
    "я": "ja",
    "щ": "sc",
    "ъ": "",
    "ь": "",
    "є": "je",
    "і": "i",
    "ї": "ji",
    "ґ": "g",
    "ў": "u",
}
# Latin letters that NFKD leaves whole, folded so that Latin and Cyrillic spellings meet.
# ð (eth) is there because its capital Ð is the glyph of Đ and gets typed for it; ǵ and ḱ are the
# official Macedonian Latin forms of ѓ and ќ.
_LATIN = {
    "đ": "dj",
    "ð": "dj",
    "ɖ": "dj",
    "ǵ": "gj",
    "ḱ": "kj",
    "ł": "l",
    "ø": "o",
    "ħ": "h",
    "ŧ": "t",
    "ƀ": "b",
    "ɨ": "i",
    "ı": "i",
    "æ": "ae",
    "œ": "oe",
    "þ": "th",
}
_FOLD_SEED = str.maketrans(_CYRILLIC | _LATIN)
_FOLD_CACHE_LIMIT = 20_000


class _FoldTable(dict[int, Any]):
    """`str.translate` table: the constant transliteration above, and for every other code point
    (worked out on first sight, then remembered) combining marks and format characters (zero-width
    spaces and joiners, soft hyphens) removed, punctuation, symbols and controls made spaces."""

    def __missing__(self, cp: int) -> Any:
        ch = chr(cp)
        category = unicodedata.category(ch)
        if unicodedata.combining(ch) or category == "Cf":
            value: Any = None
        elif category[0] in "PS" or category == "Cc":
            value = " "
        else:
            value = cp
        if len(self) < _FOLD_CACHE_LIMIT:  # bounded: hostile text may carry any code point
            self[cp] = value
        return value


_FOLD = _FoldTable(_FOLD_SEED)

# -- bounds --------------------------------------------------------------------------------------

# No character becomes more than this many in `_fold`: U+FDFA (ARABIC LIGATURE SALLALLAHOU ALAYHE
# WASALLAM) becomes 18 under NFKC, the most of any. A character that is already NFKC becomes at
# most 4 at any step. tests/test_claim_text.py checks both against unicodedata.
MAX_GROWTH = 18
# Starters (canonical combining class 0) that canonical composition still joins to what comes
# before them: Hangul medial vowels and final consonants, and the second halves of two-part vowel
# signs (Bengali, Oriya, Tamil, Kannada, Malayalam, Sinhala, Myanmar, Balinese, ...). Computed
# from Unicode 14 (Python 3.11); tests/test_claim_text.py recomputes it from unicodedata.
_JOINING_STARTERS = frozenset(
    [chr(cp) for cp in range(0x1161, 0x1176)]
    + [chr(cp) for cp in range(0x11A8, 0x11C3)]
    + [
        chr(cp)
        for cp in (
            0x09BE, 0x09D7, 0x0B3E, 0x0B56, 0x0B57, 0x0BBE, 0x0BD7, 0x0CC2, 0x0CD5, 0x0CD6,
            0x0D3E, 0x0D57, 0x0DCF, 0x0DDF, 0x0FB5, 0x0FB7, 0x102E, 0x1B35, 0x11127, 0x1133E,
            0x11357, 0x114B0, 0x114BA, 0x114BD, 0x115AF, 0x11930,
        )
    ]
)  # fmt: skip


def normalised_limit(length: int) -> int:
    """The most characters normalise_claim returns for a text of `length` characters: three for
    each (a Hangul syllable decomposes into three jamo, Serbian љ becomes "lj"), and 16 more,
    so that a short text of compatibility characters ("Ⅷ" → "viii") is not cut."""
    return 3 * length + 16


def normalise_claim(text: str) -> str:
    """Claim text folded across scripts, case, diacritics, punctuation and spacing; never raises.

    NFKC; casefold; Serbian/Macedonian (and common Russian, Ukrainian, Bulgarian) Cyrillic
    transliterated to Latin; NFKD with combining marks and format characters dropped; đ/ђ → "dj",
    dž/џ → "dz", ǵ/ѓ → "gj", ḱ/ќ → "kj"; punctuation, symbols and control characters → space;
    whitespace runs collapsed to one space; stripped. Digits and letters of other scripts are kept.

    The result is at most normalised_limit(len(text)) characters: a text that normalisation
    makes longer (compatibility characters such as U+FDFA, 18 characters under NFKC) is cut
    there, trailing space stripped. The work is bounded alike: text that is not already NFKC is
    folded a piece at a time, and folding stops once the result is known, so that no text costs
    more than a few times its length. The result is a fixed point:
    normalise_claim(normalise_claim(x)) == normalise_claim(x).
    """
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        # Nothing here grows more than four-fold: one pass.
        return " ".join(_fold(text).split())[: normalised_limit(len(text))].rstrip()
    return _normalise_in_pieces(text, MAX_GROWTH)


def _normalise_in_pieces(text: str, growth: int) -> str:
    """normalise_claim of a text folded piece by piece, each cut where `_starts_afresh` allows,
    so that the pieces fold to exactly what the whole text would. A piece is sized so that even
    at `growth` characters for each of its own it does not overshoot the limit; folding stops
    once the result is known to reach the limit, since the cut result is then known."""
    limit = normalised_limit(len(text))
    pieces: list[str] = []
    # The pieces' own collapsed lengths: at most what they collapse to together, where a word
    # cut in two loses nothing and a space at a cut gains one.
    known = 0
    start = 0
    while start < len(text) and known < limit:
        end = start + max(1, (limit - known) // growth)
        while end < len(text) and not _starts_afresh(text[end]):
            end += 1
        piece = _fold(text[start:end])
        pieces.append(piece)
        known += len(" ".join(piece.split()))
        start = end
    return " ".join("".join(pieces).split())[:limit].rstrip()


def _fold(text: str) -> str:
    """The folding steps of normalise_claim, before spaces are collapsed."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.casefold().translate(_FOLD)
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        if decomposed != text:  # else the table, which is idempotent, has nothing more to do
            text = decomposed.translate(_FOLD)
    return text


def _starts_afresh(ch: str) -> bool:
    """Whether text cut just before `ch` folds piece by piece to what it folds to whole.

    Of the folding steps only NFKC's canonical composition joins a character to what precedes
    it (NFKD's reordering moves only combining marks, which the fold table then drops). A
    starter that composition never joins to its predecessor (not one of _JOINING_STARTERS)
    also keeps everything after it from being joined to anything before it; so a character
    whose decomposition begins with such a starter is a clean cut."""
    first = unicodedata.normalize("NFKD", ch)[0]
    return not unicodedata.combining(first) and first not in _JOINING_STARTERS
