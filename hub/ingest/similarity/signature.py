"""An alert's claims as the similarity index keeps them, and how two alerts' claims are scored.

A claim's `tokens` (text.py) are shingled one word each (word order is no evidence: copies
reorder) and summarised by MinHash: NUM_PERM universal hash functions (a·h + b) mod (2^61 − 1)
over each token's 32-bit CRC, the same maths as `datasketch`. The signature is cut into BANDS
bands of ROWS rows, and each band is one index score (its CRC-32): two claims whose token sets
have Jaccard similarity s share at least one band with probability 1 − (1 − s^ROWS)^BANDS
(0.96 at s = 0.5, 0.2 at s = 0.2). Cross-language candidates come from pairs of the claim's
entities (at most MAX_PAIR_ENTITIES, one at least not broad). Candidates are then scored exactly:

- via "claim": Jaccard similarity of the two token sets, when they share at least
  MIN_SHARED_TOKENS tokens (or are equal);
- via "entities": Jaccard similarity of the two feature sets (names, numbers, dates, tags,
  concepts), when they share at least MIN_SHARED_ENTITIES entities of which one is not broad
  (a country, NATO, the EU, the UN: in too many claims to tell two apart).

Two alerts are similar when some claim of one and some claim of the other score at least the
threshold (settings: ALERTHUB_SIMILARITY_THRESHOLD). Pure; numpy for the hashing.
"""

from __future__ import annotations

import functools
import itertools
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hub.ingest.similarity.text import (
    BROAD_PREFIX,
    ENTITY_PREFIXES,
    ClaimText,
    analyse,
    language_group,
    media_feature,
    url_feature,
)

BANDS = 24
ROWS = 3
NUM_PERM = BANDS * ROWS
MAX_CLAIMS = 10  # claims of one alert that are indexed and compared
MAX_PAIR_ENTITIES = 10
MIN_SHARED_TOKENS = 3
MIN_SHARED_ENTITIES = 2
DEFAULT_THRESHOLD = 0.5
SIGNATURE_VERSION = 1

_MERSENNE = np.uint64((1 << 61) - 1)
_rng = np.random.RandomState(20)  # fixed: every process, and every stored index, agrees
_A = _rng.randint(1, 1 << 31, size=NUM_PERM, dtype=np.uint64)
_B = _rng.randint(0, 1 << 31, size=NUM_PERM, dtype=np.uint64)
_PAIR_RANGE = 1 << 32  # pair scores lie above band scores (both are CRC-32s)


@dataclass(frozen=True, slots=True)
class ClaimSignature:
    tokens: frozenset[str]
    features: frozenset[str]
    # The features that name entities, worked out once: a page of a feed compares each claim
    # with hundreds of others when a claim is copied hundreds of times.
    entities: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        entities = frozenset(f for f in self.features if f.startswith(ENTITY_PREFIXES))
        object.__setattr__(self, "entities", entities)

    def as_json(self) -> dict[str, list[str]]:
        return {"t": sorted(self.tokens), "f": sorted(self.features)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClaimSignature:
        return cls(frozenset(data.get("t", ())), frozenset(data.get("f", ())))


@dataclass(frozen=True, slots=True)
class Match:
    """Why two alerts are similar: the best-scoring pair of their claims."""

    score: float
    via: str  # "claim" | "entities"
    shared: tuple[str, ...]  # the shared entities (for "entities"), sorted

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"score": round(self.score, 3), "via": self.via}
        if self.via == "entities":
            out["shared"] = list(self.shared)
        return out


def _strs(items: Any) -> Iterable[str]:
    return (x for x in items if isinstance(x, str)) if isinstance(items, list) else ()


def _dicts(items: Any) -> Iterable[dict[str, Any]]:
    return (x for x in items if isinstance(x, dict)) if isinstance(items, list) else ()


def alert_claims(alert: dict[str, Any]) -> list[ClaimSignature]:
    """The signatures of an alert's first MAX_CLAIMS distinct claims (its narrative when it has
    none), each with the alert's URLs and media hashes among its features. Never raises."""
    texts: list[tuple[str, str | None]] = []
    for claim in _dicts(alert.get("claims")):
        text = claim.get("text")
        if isinstance(text, str) and text.strip():
            language = claim.get("language")
            texts.append((text, language if isinstance(language, str) else None))
    if not texts and isinstance(alert.get("narrative"), str) and alert["narrative"].strip():
        languages = list(_strs(alert.get("languages")))
        texts.append((alert["narrative"], languages[0] if len(languages) == 1 else None))
    if not texts:
        return []
    shared = {url_feature(u) for u in _strs(alert.get("urls"))}
    for media in _dicts(alert.get("media_hashes")):
        algorithm, value = media.get("algorithm"), media.get("value")
        if isinstance(algorithm, str) and isinstance(value, str):
            shared.add(media_feature(algorithm, value))
    found: dict[tuple[frozenset[str], frozenset[str]], ClaimSignature] = {}
    for text, language in dict.fromkeys(texts):
        claim = _analysed(text, language)
        if not claim.tokens and not claim.features:
            continue
        signature = ClaimSignature(claim.tokens, claim.features | shared)
        found.setdefault((signature.tokens, signature.features), signature)
        if len(found) >= MAX_CLAIMS:
            break
    return list(found.values())


@functools.lru_cache(maxsize=65_536)
def _permuted(token: str) -> np.ndarray:
    """A token's NUM_PERM hash values, one per permutation (tokens recur across claims)."""
    h = np.uint64(zlib.crc32(token.encode("utf-8", "surrogatepass")))
    return (_A * h + _B) % _MERSENNE & np.uint64(0xFFFFFFFF)


def warm_up() -> None:
    """Load what the first claim would otherwise wait for: the gazetteer, the concepts and the
    four dictionaries (1-3 s, about 150 MB)."""
    for text, language in (("NATO kod Zvečana", "sr"), ("NATO pranë", "sq"),
                           ("НАТО кај", "mk"), ("NATO near", "en")):  # fmt: skip
        alert_claims({"claims": [{"text": text, "language": language}]})


@functools.lru_cache(maxsize=4096)
def _analysed(text: str, language: str | None) -> ClaimText:
    """analyse, remembered: the same claim reaches the hub from several nodes and copies."""
    return analyse(text, language, language_group(language, text))


def minhash(tokens: Iterable[str]) -> np.ndarray:
    """The NUM_PERM MinHash values of a token set (all 2^32 - 1 for an empty set)."""
    rows = [_permuted(t) for t in tokens]
    if not rows:
        return np.full(NUM_PERM, 0xFFFFFFFF, dtype=np.uint64)
    return np.vstack(rows).min(axis=0)


def band_scores(values: np.ndarray) -> list[int]:
    """One index score per band of a MinHash signature: the CRC-32 of the band's ROWS values,
    seeded with the band's number. 32 bits are plenty: a score only proposes a candidate,
    which is then scored exactly."""
    data = values.astype(">u4").tobytes()
    width = ROWS * 4
    return [zlib.crc32(data[band * width : (band + 1) * width], band) for band in range(BANDS)]


def pair_score(a: str, b: str) -> int:
    """The index score of two entities seen together (a < b), above every band's score."""
    return _PAIR_RANGE | zlib.crc32(f"{a}|{b}".encode("utf-8", "surrogatepass"))


def index_scores(claims: list[ClaimSignature]) -> list[str]:
    """The alert's entries in the similarity index (keys.py, Keys.similar): one score per
    MinHash band of each claim's tokens, one per pair of its entities (not both broad);
    sorted, distinct, in decimal."""
    scores: set[int] = set()
    for claim in claims:
        if len(claim.tokens) >= 2:
            scores.update(band_scores(minhash(claim.tokens)))
        entities = sorted(claim.entities)[:MAX_PAIR_ENTITIES]
        for a, b in itertools.combinations(entities, 2):
            if not (a.startswith(BROAD_PREFIX) and b.startswith(BROAD_PREFIX)):
                scores.add(pair_score(a, b))
    return [str(score) for score in sorted(scores)]


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def claim_match(a: ClaimSignature, b: ClaimSignature) -> Match | None:
    """The better of the two reasons two claims are alike, or None when neither applies."""
    best: Match | None = None
    shared_tokens = a.tokens & b.tokens
    if a.tokens and (len(shared_tokens) >= MIN_SHARED_TOKENS or a.tokens == b.tokens):
        best = Match(_jaccard(a.tokens, b.tokens), "claim", ())
    shared_entities = a.entities & b.entities
    if len(shared_entities) >= MIN_SHARED_ENTITIES and any(
        not e.startswith(BROAD_PREFIX) for e in shared_entities
    ):
        score = _jaccard(a.features, b.features)
        if best is None or score > best.score:
            best = Match(score, "entities", tuple(sorted(shared_entities)))
    return best


def alert_match(a: list[ClaimSignature], b: list[ClaimSignature], threshold: float) -> Match | None:
    """The best match of any claim of `a` with any claim of `b`, if it reaches `threshold`."""
    best: Match | None = None
    for x in a:
        for y in b:
            found = claim_match(x, y)
            if found is not None and (best is None or found.score > best.score):
                best = found
    if best is None or best.score < threshold:
        return None
    return best


def claims_json(claims: list[ClaimSignature]) -> list[dict[str, list[str]]]:
    return [c.as_json() for c in claims]


def claims_from_json(data: Any) -> list[ClaimSignature]:
    if not isinstance(data, list):
        return []
    return [ClaimSignature.from_json(d) for d in data if isinstance(d, dict)]
