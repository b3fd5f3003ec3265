"""One claim's text as the matcher compares it: its words lemmatised and folded, and its
language-independent features (names, numbers with units, dates, hashtags, handles, URLs,
concepts). Pure, no I/O but the package's data files, read once.

The steps, in order: the text is cut at MAX_CLAIM_CHARS and scanned once into URLs, hashtags,
handles, dates, numbers, currency and percent signs, and words; each word is lemmatised for the
claim's language (simplemma: "hbs" for Serbo-Croatian in its sr, hr, bs and cnr standards, with
Cyrillic read as Latin first; "mk" in Cyrillic; "sq"; "en"), then folded as claim_text folds it
(one script, no case, no diacritics), ijekavian made ekavian, Croatian and Bosnian words given
their Serbian form; names of the gazetteer become their key; copies' decorations ("HITNO",
"(izvor: Telegram)"), function words and lone small numbers drop out.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, replace

from simplemma.strategies import DictionaryLookupStrategy

from hub.ingest.canon_values import canonical_url
from hub.ingest.claim_text import normalise_claim
from hub.ingest.similarity.lexicon import (
    ANY_STOPWORD,
    DECORATIONS,
    EN,
    HBS,
    LANGUAGE_GROUPS,
    MK,
    MONTH_ABBREVIATIONS,
    MONTHS,
    MULTIPLIERS,
    SOURCE_MARKERS,
    SOURCE_TAIL,
    SQ,
    STANDARD_VARIANTS,
    STOPWORDS,
    UNITS,
    ekavian,
)
from hub.ingest.similarity.names import Candidates, Word, concepts, gazetteer, match_candidates

MAX_CLAIM_CHARS = 1000  # a claim is a sentence or two: past this it is an article
MAX_WORDS = 200
# Feature prefixes that name something (counted by the "two entities" rule); c: concepts and
# u: units only support a link.
ENTITY_PREFIXES = ("p:", "h:", "o:", "k:", "n:", "y:", "d:", "m:", "t:", "a:", "w:", "x:")
BROAD_PREFIX = "k:"  # countries and NATO, EU, UN: in too many claims to tell two apart

# Words first: most of a claim is words, and the scanner tries the alternatives in order.
_TOKENS = re.compile(
    r"(?P<word>[^\W\d_]+)"
    r"|(?P<num>\d+(?:[.,]\d+)*(?:[\u00a0\u202f ]\d{3}(?!\d))*\.?)"
    r"|(?P<mark>[#@€$%])"
)
_URLS = re.compile(r"(?:https?://|www\.)[^\s<>\"'()]+")
_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(?:(\d{4})\.?)?")
_NO_WORD = Word("", "", fuzzy=False, capital=False)
_DICTIONARY = DictionaryLookupStrategy()
_SYMBOL_UNITS = {"€": "eur", "$": "usd", "%": "pct"}
# Serbian Cyrillic read as Latin with its diacritics, for the lemmatiser's Latin dictionary.
_SERBIAN_LATIN = str.maketrans(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "ђ": "đ", "е": "e", "ж": "ž",
        "з": "z", "и": "i", "ј": "j", "к": "k", "л": "l", "љ": "lj", "м": "m", "н": "n",
        "њ": "nj", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "ћ": "ć", "у": "u",
        "ф": "f", "х": "h", "ц": "c", "ч": "č", "џ": "dž", "ш": "š",
    }
)  # fmt: skip
_MACEDONIAN_ONLY = frozenset("ѓќѕѐѝЃЌЅ")
_SERBIAN_ONLY = frozenset("ђћЂЋ")
_ALBANIAN_LETTERS = frozenset("ëçËÇ")


@dataclass(frozen=True, slots=True)
class ClaimText:
    """`tokens`: what the claim says in its own words (lemmas, names, numbers), compared with
    claims in the same or a close language; `features`: what any telling of it carries (names,
    numbers, dates, tags, handles, URLs, concepts), compared across languages."""

    tokens: frozenset[str]
    features: frozenset[str]

    @property
    def entities(self) -> frozenset[str]:
        return frozenset(f for f in self.features if f.startswith(ENTITY_PREFIXES))


def language_group(tag: str | None, text: str) -> str | None:
    """The lemmatiser's language for a BCP 47 tag ("sr-Cyrl" → "hbs"), or guessed from the
    letters when there is no tag; None for a language the matcher has no dictionary for."""
    if tag:
        return LANGUAGE_GROUPS.get(tag.split("-")[0].strip().lower())
    letters = set(text)
    if letters & _MACEDONIAN_ONLY:
        return MK
    if letters & _SERBIAN_ONLY:
        return HBS
    if letters & _ALBANIAN_LETTERS:
        return SQ
    if any("Ѐ" <= ch <= "ӿ" for ch in letters):
        return HBS
    return None


@functools.lru_cache(maxsize=65_536)
def word_forms(group: str | None, word: str) -> Word:
    """One word, folded: its surface is matched against names, its lemma compared between
    claims; a word the dictionary knows names something only by its lemma or whole."""
    surface = normalise_claim(word).replace(" ", "")
    lemma, known = word, False
    looked_up = word.lower()
    if group == HBS:
        looked_up = looked_up.translate(_SERBIAN_LATIN)
    if group in (HBS, SQ, EN) or (group == MK and any("Ѐ" <= ch <= "ӿ" for ch in word)):
        # The dictionary alone, in one lookup: a word it does not know stays as it is (the
        # lemmatiser's guesses by affixes cost a hundred times more, and a new word is most
        # often a name).
        found = _DICTIONARY.get_lemma(looked_up, group)
        if found is not None:
            lemma, known = found, True
    folded = normalise_claim(lemma).replace(" ", "") or surface
    if group in (HBS, MK, None):
        folded = ekavian(STANDARD_VARIANTS.get(folded, folded))
    return Word(surface, folded, fuzzy=not known, capital=word[:1].isupper())


@functools.lru_cache(maxsize=65_536)
def word_info(group: str | None, word: str) -> WordInfo:
    """word_forms, with the names that may start at the word and the concept it names."""
    forms = word_forms(group, word)
    # A concept is a common word: its lemma names it however it was written.
    concept = concepts(group).match_at([replace(forms, capital=True)], 0)
    return WordInfo(forms, gazetteer().starting_with(forms), concept[1].key if concept else None)


@dataclass(frozen=True, slots=True)
class WordInfo:
    word: Word
    names: Candidates
    concept: str | None


@dataclass(slots=True)
class _Item:
    kind: str  # word | num | date | sym | tag | handle | url
    text: str
    info: WordInfo | None = None
    value: float = 0.0
    surface: str = ""
    lemma: str = ""
    word: Word = _NO_WORD


def _number(text: str) -> float | None:
    """A number as written in the region or in English: "1.000", "1,000", "1 000" are a
    thousand, "2,5" and "2.5" two and a half."""
    digits = re.sub(r"[\u00a0\u202f ]", "", text)
    groups = re.split(r"[.,]", digits)
    if len(groups) > 1 and all(len(g) == 3 for g in groups[1:]):
        digits = "".join(groups)
    elif len(groups) == 2:
        digits = ".".join(groups)
    else:
        digits = "".join(groups)
    try:
        return float(digits)
    except ValueError:
        return None


def _number_key(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _scan(text: str, group: str | None) -> list[_Item]:
    items: list[_Item] = []
    text = text[:MAX_CLAIM_CHARS]
    if "://" in text or "www." in text:
        items += [_Item("url", url) for url in _URLS.findall(text)]
        text = _URLS.sub(" ", text)
    mark: re.Match[str] | None = None  # a "#" or "@" just before what follows it
    for match in _TOKENS.finditer(text):
        kind, raw = match.lastgroup, match.group()
        after_mark = mark is not None and mark.end() == match.start()
        if kind == "word":
            if after_mark:
                assert mark is not None
                items.append(_Item("tag" if mark.group() == "#" else "handle", raw))
            else:
                info = word_info(group, raw)
                word = info.word
                if word.surface:
                    items.append(_Item("word", raw, info, 0.0, word.surface, word.lemma, word))
        elif kind == "num":
            items.append(_number_item(raw))
        elif raw in _SYMBOL_UNITS:
            items.append(_Item("sym", raw))
        mark = match if kind == "mark" and raw in "#@" else None
        if len(items) >= MAX_WORDS:
            break
    return items


def _number_item(raw: str) -> _Item:
    """A number, or a date ("15.01.2024.", "15.1."): a date has two or three dotted parts,
    ends in a dot or has a year, and names a real day and month."""
    date = _DATE.fullmatch(raw)
    if date is not None and (raw.endswith(".") or date.group(3)):
        day, month = int(date.group(1)), int(date.group(2))
        if 1 <= day <= 31 and 1 <= month <= 12:
            return _Item("date", raw)
    value = _number(raw.rstrip("."))
    return _Item("num", raw, value=value if value is not None else 0.0)


def _drop_source_tail(items: list[_Item]) -> list[_Item]:
    """Without a trailing "(izvor: Telegram)", "source: X" or "via @x" (SOURCE_MARKERS)."""
    for index in range(len(items) - 1, max(-1, len(items) - SOURCE_TAIL - 2), -1):
        item = items[index]
        if item.kind == "word" and item.surface in SOURCE_MARKERS:
            return items[:index]
    return items


def _date_key(text: str) -> tuple[str, str | None]:
    """(d:MM-DD, y:YYYY or None) of a date _number_item found."""
    date = _DATE.fullmatch(text)
    assert date is not None
    day, month, year = date.group(1), date.group(2), date.group(3)
    return f"d:{int(month):02d}-{int(day):02d}", (f"y:{year}" if year else None)


def analyse(text: str, language: str | None, group: str | None = None) -> ClaimText:
    """The claim's tokens and features (ClaimText); `group` overrides the language's."""
    if group is None:
        group = language_group(language, text)
    items = _drop_source_tail(_scan(text, group))
    stopwords = STOPWORDS.get(group, ANY_STOPWORD) if group else ANY_STOPWORD
    tokens: set[str] = set()
    features: set[str] = set()
    words = [item.word for item in items]
    i = 0
    while i < len(items):
        item = items[i]
        if item.kind == "word":
            assert item.info is not None
            found = None
            if item.info.names and item.surface not in stopwords:
                found = match_candidates(item.info.names, words, i)
            if found is not None:
                covered, entry = found
                tokens.add(entry.key)
                features.add(entry.key)
                i += covered
                continue
            month = MONTHS.get(item.surface)
            if month is not None and item.surface not in MONTH_ABBREVIATIONS:
                key = f"m:{month:02d}"
                tokens.add(key)
                features.add(key)
            elif item.surface in UNITS and UNITS[item.surface] not in ("people", "troops"):
                features.add("u:" + UNITS[item.surface])
            elif (
                item.surface not in stopwords
                and item.lemma not in stopwords
                and item.surface not in DECORATIONS
                and len(item.lemma) > 1
            ):
                tokens.add(item.lemma)
                if item.info.concept is not None:
                    features.add(item.info.concept)
        elif item.kind == "num":
            i += _number_features(items, i, tokens, features)
            continue
        elif item.kind == "date":
            day, year = _date_key(item.text)
            for key in (day, year):
                if key is not None:
                    tokens.add(key)
                    features.add(key)
        elif item.kind == "sym":
            features.add("u:" + _SYMBOL_UNITS[item.text])
        elif item.kind == "tag":
            _tag_feature(item.text, features)
        elif item.kind == "handle":
            features.add("a:" + normalise_claim(item.text).replace(" ", "_"))
        elif item.kind == "url":
            features.add(url_feature(item.text))
        i += 1
    return ClaimText(frozenset(tokens), frozenset(features))


def _tag_feature(body: str, features: set[str]) -> None:
    folded = normalise_claim(body).replace(" ", "")
    if not folded:
        return
    found = gazetteer().match_at([Word(folded, folded, fuzzy=False)], 0)
    features.add(found[1].key if found is not None else "t:" + folded)


def url_feature(url: str) -> str:
    """w: and a short digest of the URL's canonical form (hub.ingest.canon_values)."""
    canonical = canonical_url(url if "://" in url else "https://" + url) or url
    return (
        "w:"
        + hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    )


def media_feature(algorithm: str, value: str) -> str:
    text = f"{algorithm.strip().lower().replace('-', '')}:{value.strip().lower()}"
    return "x:" + hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _number_features(items: list[_Item], i: int, tokens: set[str], features: set[str]) -> int:
    """Features of the number at items[i] and the words that qualify it; returns how many items
    it used. "500 hiljada evra" is 500000 with unit eur; "15. januara" a date; a year alone is
    y:; a number under ten with no unit is nothing."""
    value = items[i].value
    used = 1
    unit: str | None = None
    if i > 0 and items[i - 1].kind == "sym":
        unit = _SYMBOL_UNITS[items[i - 1].text]
    nxt = items[i + used] if i + used < len(items) else None
    if nxt is not None and nxt.kind == "word" and nxt.surface in MULTIPLIERS:
        value *= MULTIPLIERS[nxt.surface]
        used += 1
        nxt = items[i + used] if i + used < len(items) else None
    if (
        nxt is not None
        and nxt.kind == "word"
        and nxt.surface in MONTHS
        and value == int(value)
        and 1 <= value <= 31
    ):
        key = f"d:{MONTHS[nxt.surface]:02d}-{int(value):02d}"
        tokens.add(key)
        features.add(key)
        return used + 1
    if nxt is not None and nxt.kind == "word" and nxt.surface in UNITS:
        unit = UNITS[nxt.surface]
        used += 1
    elif nxt is not None and nxt.kind == "sym":
        unit = _SYMBOL_UNITS[nxt.text]
        used += 1
    number = _number_key(value)
    if unit is not None:
        tokens.add(f"n:{number}")
        features.update((f"n:{number}", f"u:{unit}"))
    elif value == int(value) and 1900 <= value <= 2099:
        tokens.add(f"y:{number}")
        features.add(f"y:{number}")
    elif value >= 10:
        tokens.add(f"n:{number}")
        features.add(f"n:{number}")
    else:
        tokens.add(f"n:{number}")
    return used
