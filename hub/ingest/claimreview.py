"""A fact-check as schema.org ClaimReview JSON-LD, the form search engines and the
fact-checking community's tools (Google's Fact Check Explorer, the Duke Reporters' Lab
database) read. Pure.

A fact-checker publishes this markup on its own article page, so it carries only what may be
made public: the fact-check itself, and from the alerts only the URLs of TLP:CLEAR reports
(`public_appearances`), never what a GREEN, AMBER or RED report told the community."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hub.ingest.fact_checks import StoredFactCheck

CONTEXT = "https://schema.org"


def _work(url: str) -> dict[str, str]:
    return {"@type": "CreativeWork", "url": url}


def claim_review(
    fact_check: StoredFactCheck, public_appearances: Iterable[str] = ()
) -> dict[str, Any]:
    """The ClaimReview of one fact-check; `public_appearances` are URLs where the claim was
    seen that may be published (those of TLP:CLEAR reports), added to the checker's own."""
    doc = fact_check.doc
    rating = doc["rating"]
    claim: dict[str, Any] = {"@type": "Claim"}
    appearances = list(dict.fromkeys([*doc.get("appearances", ()), *public_appearances]))
    if appearances:
        claim["appearance"] = [_work(u) for u in appearances]
    first = doc.get("first_appearance") or (appearances[0] if appearances else None)
    if first:
        claim["firstAppearance"] = _work(first)
    author = doc.get("claim_author")
    if author:
        claim["author"] = {"@type": author.get("type", "Organization"), "name": author["name"]}
        if author.get("url"):
            claim["author"]["url"] = author["url"]
    if doc.get("claim_date"):
        claim["datePublished"] = doc["claim_date"]
    publisher: dict[str, Any] = {"@type": "Organization", "name": doc["checker_name"]}
    if doc.get("author_url"):
        publisher["url"] = doc["author_url"]
    return {
        "@context": CONTEXT,
        "@type": "ClaimReview",
        "identifier": fact_check.id,
        "url": doc["url"],
        "claimReviewed": doc["claim_reviewed"],
        "datePublished": doc["published_at"],
        "inLanguage": doc["language"],
        "author": publisher,
        "reviewRating": {
            "@type": "Rating",
            "ratingValue": rating["value"],
            "bestRating": rating["best"],
            "worstRating": rating["worst"],
            "alternateName": rating["alternate_name"],
            "name": rating["alternate_name"],
            "ratingExplanation": doc["summary"],
        },
        "itemReviewed": claim,
    }
