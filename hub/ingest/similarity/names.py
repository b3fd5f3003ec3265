"""Names found in folded claim text, whatever the language's case endings: the gazetteer's places,
people, institutions and countries, and the concepts of concepts.tsv. Pure; the data files are
read once per process, on first use.

A name is matched word by word. A word of the text matches a word of the name when it is that
word, or, for a name word of four letters or more, when it starts with the name word's stem (the
word less a final vowel) and has at most three letters more: "Zvečana", "Zvečanu", "Zveçanit"
and "Звечан" all name Zvečan; "Prištine", "Prishtinës" and "prištinski" name Priština.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from hub.ingest.claim_text import normalise_claim
from hub.ingest.similarity.lexicon import EN, HBS, MK, SQ

MAX_ENDING = 3  # letters a case ending adds: -ima, -ove, -it, -ës, -om
MIN_STEM = 4  # a shorter name word is matched only whole
BROAD_KINDS = frozenset({"country", "org-broad"})
_VOWELS = frozenset("aeiouy")


@dataclass(frozen=True, slots=True)
class Entry:
    """One named thing: `key` is what a signature holds ("p:783770", "h:vucic", "k:rs")."""

    key: str
    kind: str
    display: str

    @property
    def broad(self) -> bool:
        return self.kind in BROAD_KINDS


def stem(word: str) -> str:
    """The part of a name word that its case forms share."""
    if len(word) >= MIN_STEM + 1 and word[-1] in _VOWELS:
        return word[:-1]
    return word


@dataclass(frozen=True, slots=True)
class Word:
    """A word of a claim as names are matched against it: its folded surface, its folded lemma,
    whether its stem may stand for a name (only for a word the language's dictionary does not
    know: "rekao", a form of "reći", must not name Rijeka by its alias "Reka"), and whether it
    was written with a capital (only then does its lemma name something: "Beograda" names
    Beograd, but "rekao", lemma "reći", does not name the village Reçi)."""

    surface: str
    lemma: str
    fuzzy: bool = True
    capital: bool = True


def word_matches(word: Word, name_word: str) -> bool:
    if name_word == word.surface or (word.capital and name_word == word.lemma):
        return True
    if not word.fuzzy or len(name_word) < MIN_STEM:
        return False
    root = stem(name_word)
    return word.surface.startswith(root) and len(word.surface) - len(root) <= MAX_ENDING


def probes(word: Word) -> Iterable[str]:
    """The keys under which a name starting with `word` may be indexed (its stems)."""
    yield word.surface
    if word.capital:
        yield word.lemma
        yield stem(word.lemma)
    if not word.fuzzy:
        return
    for cut in range(1, MAX_ENDING + 1):
        if len(word.surface) - cut < MIN_STEM:
            return
        yield word.surface[:-cut]


class NameIndex:
    """Names (each a tuple of folded words) of entries, matched in a folded token list."""

    def __init__(self) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], Entry]]] = {}
        self._seen: set[tuple[str, ...]] = set()
        self.entries: dict[str, Entry] = {}

    def add(self, name: str, entry: Entry) -> None:
        """Index `name` for `entry`, unless an earlier entry has the same name."""
        words = tuple(normalise_claim(name).split())
        if not words or words in self._seen or len(words) > 4:
            return
        self._seen.add(words)
        first = words[0]
        key = stem(first) if len(first) >= MIN_STEM else first
        self._by_first.setdefault(key, []).append((words, entry))
        self.entries.setdefault(entry.key, entry)

    def starting_with(self, word: Word) -> Candidates:
        """The names whose first word `word` matches, longest first (then by key): what
        match_at tries. Worked out once per distinct word (text.word_forms keeps it)."""
        found = {
            (words, entry)
            for probe in set(probes(word))
            for words, entry in self._by_first.get(probe, ())
            if word_matches(word, words[0])
        }
        return tuple(sorted(found, key=lambda c: (-len(c[0]), c[1].key)))

    def match_at(self, tokens: list[Word], start: int) -> tuple[int, Entry] | None:
        """The longest name starting at tokens[start], as (words it covers, entry)."""
        return match_candidates(self.starting_with(tokens[start]), tokens, start)


Candidates = tuple[tuple[tuple[str, ...], Entry], ...]


def match_candidates(
    candidates: Candidates, tokens: list[Word], start: int
) -> tuple[int, Entry] | None:
    """The first of `candidates` (names whose first word is tokens[start]) whose other words
    follow, as (words it covers, entry)."""
    for words, entry in candidates:
        end = start + len(words)
        if end <= len(tokens) and all(
            word_matches(tokens[start + i], w) for i, w in enumerate(words[1:], 1)
        ):
            return len(words), entry
    return None


def _rows(name: str) -> Iterable[list[str]]:
    text = (
        resources.files("hub.ingest.similarity").joinpath("data").joinpath(name).read_text("utf-8")
    )
    for line in text.splitlines():
        if line and not line.startswith("#"):
            yield line.split("\t")


@functools.cache
def gazetteer() -> NameIndex:
    """The places, people, institutions and countries of data/gazetteer.tsv (README.md there)."""
    index = NameIndex()
    for row in _rows("gazetteer.tsv"):
        if len(row) != 4:
            continue
        key, kind, display, aliases = row
        entry = Entry(key, kind, display)
        for alias in aliases.split("|"):
            index.add(alias, entry)
    return index


_CONCEPT_COLUMNS = {EN: 1, HBS: 2, MK: 3, SQ: 4}


@functools.cache
def concepts(group: str | None) -> NameIndex:
    """The concepts of data/concepts.tsv, by the words of one language group (of all of them
    for None: a claim whose language is not one of the region's)."""
    index = NameIndex()
    columns = [_CONCEPT_COLUMNS[group]] if group in _CONCEPT_COLUMNS else [1, 2, 3, 4]
    for row in _rows("concepts.tsv"):
        if len(row) != 5 or row[0] == "concept":
            continue
        entry = Entry("c:" + row[0], "concept", row[0])
        for column in columns:
            for word in row[column].split("|"):
                index.add(word, entry)
    return index


def display_name(key: str) -> str | None:
    """The name shown for a gazetteer key ("p:783770" → "Zvečan (XK)"), None if unknown."""
    entry = gazetteer().entries.get(key)
    return entry.display if entry is not None else None
