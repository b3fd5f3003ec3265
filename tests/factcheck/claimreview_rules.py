"""What ClaimReview markup must and should carry, written from two pages and independent of the
hub's own mapping (hub/ingest/claimreview.py):

- schema.org/ClaimReview (and Claim, Rating, Organization, Person): the types and what each
  property expects: itemReviewed a Claim; appearance and firstAppearance a CreativeWork or a
  URL; author an Organization or a Person; reviewRating a Rating, whose bestRating and
  worstRating default to 5 and 1 and bound ratingValue; inLanguage an IETF BCP 47 tag;
  datePublished an ISO 8601 date or date-time.
- Google Search Central, "Fact check (ClaimReview) structured data": JSON-LD with the
  https://schema.org context; ClaimReview requires claimReviewed, reviewRating and url and
  recommends author, datePublished and itemReviewed; the author is the fact-check's publisher
  and has a name or a url; Claim recommends appearance, author, datePublished and
  firstAppearance; Rating requires alternateName and recommends bestRating, name, ratingValue
  and worstRating; claimReviewed does not contain the rating; url is the full article's page.

`errors(doc)` lists what breaks a requirement; `missing_recommended(doc)` what a publisher would
be told to add."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

CONTEXTS = ("https://schema.org", "http://schema.org", "https://schema.org/", "http://schema.org/")
REQUIRED = {
    "ClaimReview": ("claimReviewed", "reviewRating", "url"),
    "Rating": ("alternateName",),
}
RECOMMENDED = {
    "ClaimReview": ("author", "datePublished", "itemReviewed"),
    "Claim": ("appearance", "author", "datePublished", "firstAppearance"),
    "Rating": ("bestRating", "name", "ratingValue", "worstRating"),
}
BCP47 = re.compile(r"^[a-zA-Z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def _present(value: Any) -> bool:
    return value not in (None, "", [], {})


def _is_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _is_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
    return True


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _work_or_url(value: Any, where: str) -> list[str]:
    """A CreativeWork (with a url) or a URL, or a list of them."""
    found = []
    for item in _as_list(value):
        if _is_url(item):
            continue
        if (
            isinstance(item, dict)
            and item.get("@type") == "CreativeWork"
            and _is_url(item.get("url"))
        ):
            continue
        found.append(f"{where}: must be a URL or a CreativeWork with a url, not {item!r}")
    return found


def _party(value: Any, where: str) -> list[str]:
    if not isinstance(value, dict) or value.get("@type") not in ("Organization", "Person"):
        return [f"{where}: must be an Organization or a Person"]
    if not (_present(value.get("name")) or _is_url(value.get("url"))):
        return [f"{where}: must have a name or a url"]
    if "url" in value and not _is_url(value["url"]):
        return [f"{where}.url: must be an absolute URL"]
    return []


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _rating(rating: Any) -> list[str]:
    if not isinstance(rating, dict) or rating.get("@type") != "Rating":
        return ["reviewRating: must be a Rating"]
    found = [
        f"reviewRating.{p}: required" for p in REQUIRED["Rating"] if not _present(rating.get(p))
    ]
    if "ratingValue" in rating:
        value = _number(rating["ratingValue"])
        best = _number(rating.get("bestRating", 5))
        worst = _number(rating.get("worstRating", 1))
        if value is None or best is None or worst is None:
            found.append("reviewRating: ratingValue, bestRating and worstRating must be numbers")
        elif not worst <= value <= best:
            found.append(f"reviewRating.ratingValue: {value} is outside {worst}..{best}")
    return found


def errors(doc: Any) -> list[str]:
    """What in `doc` breaks schema.org's types or Google's requirements; [] when nothing."""
    if not isinstance(doc, dict):
        return ["the markup must be a JSON object"]
    found: list[str] = []
    if doc.get("@context") not in CONTEXTS:
        found.append("@context: must be https://schema.org")
    if doc.get("@type") != "ClaimReview":
        found.append("@type: must be ClaimReview")
    found += [f"{p}: required" for p in REQUIRED["ClaimReview"] if not _present(doc.get(p))]
    if "url" in doc and not _is_url(doc["url"]):
        found.append("url: must be the absolute URL of the fact-check article")
    claim = doc.get("claimReviewed")
    if claim is not None and not isinstance(claim, str):
        found.append("claimReviewed: must be text")
    if "reviewRating" in doc:
        found += _rating(doc["reviewRating"])
        verdict = (doc["reviewRating"] or {}).get("alternateName")
        if isinstance(claim, str) and isinstance(verdict, str) and claim.strip() == verdict:
            found.append("claimReviewed: must state the claim, not the rating")
    if "author" in doc:
        found += _party(doc["author"], "author")
    if "datePublished" in doc and not _is_date(doc["datePublished"]):
        found.append("datePublished: must be an ISO 8601 date or date-time")
    if "inLanguage" in doc and not (
        isinstance(doc["inLanguage"], str) and BCP47.match(doc["inLanguage"])
    ):
        found.append("inLanguage: must be a BCP 47 language tag")
    item = doc.get("itemReviewed")
    if item is not None:
        if not isinstance(item, dict) or item.get("@type") != "Claim":
            found.append("itemReviewed: must be a Claim")
        else:
            for prop in ("appearance", "firstAppearance"):
                if prop in item:
                    found += _work_or_url(item[prop], f"itemReviewed.{prop}")
            if "author" in item:
                found += _party(item["author"], "itemReviewed.author")
            if "datePublished" in item and not _is_date(item["datePublished"]):
                found.append("itemReviewed.datePublished: must be an ISO 8601 date or date-time")
    return found


def missing_recommended(doc: dict[str, Any]) -> list[str]:
    """Google's recommended properties that `doc` lacks."""
    missing = [p for p in RECOMMENDED["ClaimReview"] if not _present(doc.get(p))]
    claim = doc.get("itemReviewed") or {}
    missing += [f"itemReviewed.{p}" for p in RECOMMENDED["Claim"] if not _present(claim.get(p))]
    rating = doc.get("reviewRating") or {}
    missing += [f"reviewRating.{p}" for p in RECOMMENDED["Rating"] if not _present(rating.get(p))]
    return missing
