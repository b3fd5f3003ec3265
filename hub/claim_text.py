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


def normalise_claim(text: str) -> str:
    """Claim text folded across scripts, case, diacritics, punctuation and spacing; never raises.

    NFKC; casefold; Serbian/Macedonian (and common Russian, Ukrainian, Bulgarian) Cyrillic
    transliterated to Latin; NFKD with combining marks and format characters dropped; đ/ђ → "dj",
    dž/џ → "dz", ǵ/ѓ → "gj", ḱ/ќ → "kj"; punctuation, symbols and control characters → space;
    whitespace runs collapsed to one space; stripped. Digits and letters of other scripts are kept.
    The result is a fixed point: normalise_claim(normalise_claim(x)) == normalise_claim(x).
    """
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.casefold().translate(_FOLD)
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).translate(_FOLD)
    return " ".join(text.split())
