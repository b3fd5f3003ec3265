"""Canonical URLs, claim text, indicators, fingerprints and link keys (hub/canon.py and
hub/canon_values.py)."""

from __future__ import annotations

import copy
import ipaddress
import json
import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.ingest.canon import (
    _Content,
    _fingerprint_input,
    canonical_indicator,
    canonical_url,
    content_keys,
    fingerprint,
    index_keys,
    link_keys,
    link_score,
    normalise_claim,
)
from hub.ingest.canon_values import _canonical_url_general
from tests.conftest import load_example

# The two example alerts of API.md, "The alert body", as published in schemas/examples.
DISINFO = load_example("api-disinformation-sr-cyrl.json")
THREAT = load_example("api-threat-phishing.json")

# Official Serbian Cyrillic → Latin table, written independently of hub.canon for the tests.
SERBIAN_LATIN = dict(
    zip(
        "абвгдђежзијклљмнњопрстћуфхцчџш",
        [
            "a",
            "b",
            "v",
            "g",
            "d",
            "đ",
            "e",
            "ž",
            "z",
            "i",
            "j",
            "k",
            "l",
            "lj",
            "m",
            "n",
            "nj",
            "o",
            "p",
            "r",
            "s",
            "t",
            "ć",
            "u",
            "f",
            "h",
            "c",
            "č",
            "dž",
            "š",
        ],
        strict=True,
    )
)
SERBIAN_CYRILLIC = "".join(SERBIAN_LATIN)


def to_serbian_latin(text: str) -> str:
    out = []
    for ch in text:
        latin = SERBIAN_LATIN.get(ch.lower())
        if latin is None:
            out.append(ch)
        else:
            out.append(latin.capitalize() if ch.isupper() else latin)
    return "".join(out)


# -- canonical_url -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        # tracking parameters
        ("https://news.example/a?id=77&utm_source=tg", "https://news.example/a?id=77"),
        ("https://news.example/a?UTM_Medium=x&Utm_Campaign=y", "https://news.example/a"),
        ("https://n.example/a?fbclid=1&gclid=2&dclid=3&id=4", "https://n.example/a?id=4"),
        ("https://n.example/a?gbraid=1&wbraid=2&msclkid=3", "https://n.example/a"),
        ("https://n.example/a?mc_cid=1&mc_eid=2&igshid=3&yclid=4", "https://n.example/a"),
        ("https://n.example/a?_ga=1&ref_src=twsrc&FBCLID=x", "https://n.example/a"),
        ("https://n.example/a?s=1&t=2", "https://n.example/a?s=1&t=2"),
        ("https://n.example/a?si=abc", "https://n.example/a?si=abc"),
        ("https://youtu.be/xyz?si=abc&t=30", "https://youtu.be/xyz?t=30"),
        ("https://www.youtube.com/watch?v=1&si=abc", "https://www.youtube.com/watch?v=1"),
        ("https://open.spotify.com/track/1?si=abc", "https://open.spotify.com/track/1"),
        ("https://n.example/a?", "https://n.example/a"),
        ("https://n.example/a?&&b=1&", "https://n.example/a?b=1"),
        ("https://n.example/a?utm_source%5Fx=1", "https://n.example/a"),
        # query order
        ("https://n.example/a?b=2&a=1&c=3", "https://n.example/a?a=1&b=2&c=3"),
        ("https://n.example/a?b=2&a=9&a=1", "https://n.example/a?a=9&a=1&b=2"),
        # default ports
        ("http://n.example:80/a", "http://n.example/a"),
        ("https://n.example:443/a", "https://n.example/a"),
        ("https://n.example:80/a", "https://n.example:80/a"),
        ("http://n.example:8080/a", "http://n.example:8080/a"),
        ("http://n.example:0080/a", "http://n.example/a"),
        ("http://n.example:/a", "http://n.example/a"),
        # fragments
        ("https://n.example/a#section-2", "https://n.example/a"),
        ("https://n.example/#!/spa/route", "https://n.example/"),
        # trailing slashes
        ("https://n.example/a/", "https://n.example/a"),
        ("https://n.example/a/b//", "https://n.example/a/b"),
        ("https://n.example", "https://n.example/"),
        ("https://n.example/", "https://n.example/"),
        ("https://n.example/?b=1", "https://n.example/?b=1"),
        # scheme and host case, www, IDNA, trailing dot, IPv6
        ("HTTPS://News.EXAMPLE/Path", "https://news.example/Path"),
        ("https://www.n.example/a", "https://www.n.example/a"),
        ("http://пример.срб/", "http://xn--e1afmkfd.xn--90a3ac/"),
        ("http://ZVEČAN.example/", "http://xn--zvean-jya.example/"),
        ("http://n.example./a", "http://n.example/a"),
        ("http://[2001:DB8:0:0::1]:80/", "http://[2001:db8::1]/"),
        ("https://user:Pw@N.example/", "https://user:Pw@n.example/"),
        # percent-encoding
        ("https://n.example/%7euser/%41", "https://n.example/~user/A"),
        ("https://n.example/a%2fb", "https://n.example/a%2Fb"),
        ("https://n.example/a%3Fb?q=%e2%82%ac", "https://n.example/a%3Fb?q=%E2%82%AC"),
        ("https://n.example/Звечан", "https://n.example/%D0%97%D0%B2%D0%B5%D1%87%D0%B0%D0%BD"),
        ("https://n.example/a b", "https://n.example/a%20b"),
        ("https://n.example/100%", "https://n.example/100%25"),
        # whitespace
        ("  https://n.example/a \n", "https://n.example/a"),
        # not absolute URLs: stripped, otherwise unchanged
        ("  News.Example/A  ", "News.Example/A"),
        ("mailto:Someone@Example.com", "mailto:Someone@Example.com"),
        ("", ""),
        ("http://[::1/", "http://[::1/"),
        ("https://", "https://"),
    ],
)
def test_canonical_url_rules(raw: str, canonical: str) -> None:
    """Each URL rule (tracking params, ports, fragments, slashes, case, escapes) holds."""
    assert canonical_url(raw) == canonical


@given(st.text())
def test_canonical_url_idempotent_on_any_text(text: str) -> None:
    """canonical_url never raises and is a fixed point on arbitrary text."""
    once = canonical_url(text)
    assert canonical_url(once) == once


_label = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=12)
_hosts = st.one_of(
    st.lists(_label, min_size=1, max_size=4).map(".".join),
    st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
    st.sampled_from(["WWW.Example.COM", "пример.рф", "Zvečan.example.", "youtube.com"]),
)
_ports = st.one_of(st.just(""), st.integers(0, 70000).map(lambda p: f":{p}"), st.just(":"))
_segment = st.text(string.ascii_letters + string.digits + "-._~%!$&'()*+,;=:@ éЖ", max_size=10)
_paths = st.lists(_segment, max_size=4).map(lambda segs: "/" + "/".join(segs))
_keys = st.one_of(
    st.sampled_from(["utm_source", "UTM_x", "fbclid", "si", "id", "a", "b", "t"]),
    st.text(string.ascii_letters + "%_", max_size=6),
)
_params = st.lists(
    st.tuples(_keys, st.text(string.printable + "čЖ", max_size=6)).map("=".join), max_size=5
)
_queries = st.one_of(st.just(""), _params.map(lambda ps: "?" + "&".join(ps)))
_fragments = st.one_of(st.just(""), st.text(max_size=8).map(lambda f: "#" + f))
_urls = st.tuples(
    st.sampled_from(["http", "https", "HTTP", "Https", "ftp", "hxxp"]),
    _hosts,
    _ports,
    _paths,
    _queries,
    _fragments,
).map(lambda p: f"{p[0]}://{p[1]}{p[2]}{p[3]}{p[4]}{p[5]}")


@given(_urls)
@settings(max_examples=500)
def test_canonical_url_idempotent_on_generated_urls(url: str) -> None:
    """canonical_url is a fixed point on URL-like strings built from their parts."""
    once = canonical_url(url)
    assert canonical_url(once) == once


_plain_urls = st.tuples(
    st.sampled_from(["http", "https"]),
    st.lists(
        st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=8),
        min_size=1,
        max_size=3,
    ).map(".".join),
    st.lists(st.text(string.ascii_letters + "-._~!$&'()*+,;=:@", max_size=6), max_size=3).map(
        lambda segs: "/" + "/".join(segs)
    )
    | st.just(""),
    _queries | st.text("abz=&?/:_-%", max_size=10).map(lambda q: "?" + q),
).map("{0[0]}://{0[1]}{0[2]}{0[3]}".format)


@given(st.one_of(_urls, _plain_urls))
@settings(max_examples=500)
def test_canonical_url_fast_path_agrees_with_general_path(url: str) -> None:
    """The shortcut for plain http(s) URLs gives what the general path gives."""
    assert canonical_url(url) == _canonical_url_general(url.strip())


@given(
    st.ip_addresses(v=4).map(str) | st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,4}){3}", fullmatch=True)
)
def test_plain_ipv4_shortcut_agrees_with_ipaddress(text: str) -> None:
    """A dotted quad comes out as the ipaddress module writes it, or unchanged when invalid."""
    try:
        expected = str(ipaddress.ip_address(text))
    except ValueError:
        expected = text
    assert canonical_indicator("ipv4", text) == expected


@given(_urls)
def test_canonical_url_has_no_fragment_or_tracking(url: str) -> None:
    """A canonical absolute URL keeps no fragment and no utm_/fbclid parameter."""
    out = canonical_url(url)
    if "://" in out and out != url.strip():
        assert "#" not in out
        query = out.partition("?")[2]
        keys = [p.partition("=")[0].lower() for p in query.split("&") if p]
        assert not any(k.startswith("utm_") or k == "fbclid" for k in keys)


# -- normalise_claim -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("НАТО гомила трупе код Звечана", "NATO gomila trupe kod Zvečana"),
        ("НАТО гомила трупе код Звечана", "nato gomila trupe kod zvecana"),
        ("НАТО гомила трупе код Звечана", "  NATO, gomila trupe — kod Zvečana!!! "),
        ("НАТО гомила трупе код Звечана", "НАТО\tгомила\n\nтрупе   код «Звечана»"),
        ("Ђоковић", "Đoković"),
        ("Ђоковић", "Djokovic"),
        ("Ђоковић", "ÐOKOVIĆ"),
        ("Џаковић", "Džaković"),
        ("Џаковић", "Dzakovic"),
        ("Џаковић", "ǅaković"),
        ("Љубљана и Њујорк", "Ljubljana i Njujork"),
        ("ћирилица, чешаљ, шума, жаба", "ćirilica cešalj šuma žaba"),
        ("Јован Јовановић Змај", "Jovan Jovanović Zmaj"),
        # Macedonian
        ("Ѓорѓе Петров", "Gjorgje Petrov"),
        ("Ѓорѓе Петров", "Ǵorǵe Petrov"),
        ("Ќосе, ѕвезда", "Kjose dzvezda"),
        ("Ќосе", "Ḱose"),
        ("Скопје е главен град", "Skopje e glaven grad"),
        ("Охрид ѝ припаѓа", "Ohrid i pripagja"),
        # Russian, Ukrainian
        ("Толстой", "Tolstoj"),
        ("Київ", "Kijiv"),
        # invisible characters used to dodge matching
        ("НА\u200bТО", "NATO"),
        ("tro\u00adops", "troops"),
        # compatibility forms
        ("ＮＡＴＯ ２０２６", "nato 2026"),
        ("Shqipëri çështje", "shqiperi ceshtje"),
    ],
)
def test_normalise_claim_pairs_meet(a: str, b: str) -> None:
    """Spellings across Cyrillic/Latin, case, diacritics, punctuation and spacing meet."""
    assert normalise_claim(a) == normalise_claim(b)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("НАТО гомила трупе код Звечана", "nato gomila trupe kod zvecana"),
        ("Ђоковић", "djokovic"),
        ("Џаковић", "dzakovic"),
        ("T0085.001 — 5G!", "t0085 001 5g"),
        ("Ελλάδα 2026", "ελλαδα 2026"),
        ("北京 news", "北京 news"),
        ("...!!!", ""),
        ("", ""),
        ("a\x00b", "a b"),
    ],
)
def test_normalise_claim_values(text: str, folded: str) -> None:
    """The folded form is lowercase Latin for Cyrillic and keeps digits and other scripts."""
    assert normalise_claim(text) == folded


@pytest.mark.parametrize(("a", "b"), [("Zvečan", "Zvezda"), ("Ђоковић", "Ћоковић")])
def test_normalise_claim_keeps_different_words_apart(a: str, b: str) -> None:
    """Different words stay different after folding."""
    assert normalise_claim(a) != normalise_claim(b)


def test_normalise_claim_leaves_no_common_cyrillic() -> None:
    """No letter of the basic Cyrillic block (U+0400–U+045F) or ґ survives."""
    letters = "".join(chr(cp) for cp in range(0x400, 0x460)) + "Ґґ"
    assert not any("\u0400" <= ch <= "\u04ff" for ch in normalise_claim(letters))


@given(st.text())
def test_normalise_claim_idempotent(text: str) -> None:
    """normalise_claim never raises and is a fixed point on arbitrary text."""
    once = normalise_claim(text)
    assert normalise_claim(once) == once


@given(st.text())
def test_normalise_claim_output_shape(text: str) -> None:
    """The output has no surrounding or doubled spaces and no other whitespace."""
    out = normalise_claim(text)
    assert out == " ".join(out.split())
    assert all(ch == " " or not ch.isspace() for ch in out)


_serbian_words = st.lists(
    st.text(SERBIAN_CYRILLIC + SERBIAN_CYRILLIC.upper(), min_size=1, max_size=10),
    min_size=1,
    max_size=8,
)


@given(_serbian_words, st.sampled_from([" ", ", ", " - ", "  ", "\n"]))
def test_serbian_cyrillic_and_latin_meet(words: list[str], sep: str) -> None:
    """A Serbian sentence in Cyrillic and its official Latin transliteration normalise equally."""
    cyrillic = sep.join(words)
    assert normalise_claim(cyrillic) == normalise_claim(to_serbian_latin(cyrillic))


# -- canonical_indicator -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "value", "canonical"),
    [
        (
            "url",
            " HTTPS://E-Albania-Gov.example:443/login/#x ",
            "https://e-albania-gov.example/login",
        ),
        ("domain", "E-Albania-Gov.Example.", "e-albania-gov.example"),
        ("domain", "Пример.РФ", "xn--e1afmkfd.xn--p1ai"),
        ("domain-name", "Example.COM", "example.com"),
        ("ipv4", " 203.0.113.7 ", "203.0.113.7"),
        ("ipv6", "2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("ipv6", "::FFFF:203.0.113.7", "::ffff:cb00:7107"),
        ("ipv6", "[2001:db8::1]", "2001:db8::1"),
        ("ipv4", "999.1.1.1", "999.1.1.1"),
        ("ipv4", "Not-An-IP", "not-an-ip"),
        ("email", "Phish@E-Albania.Example", "phish@e-albania.example"),
        ("email", "x@пример.рф", "x@xn--e1afmkfd.xn--p1ai"),
        ("email", "NoAt", "noat"),
        (
            "sha256",
            "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        ),
        ("md5", " D41D8CD98F00B204E9800998ECF8427E", "d41d8cd98f00b204e9800998ecf8427e"),
        ("SHA1", "DA39A3EE", "da39a3ee"),
        ("cve", " cve-2024-3094 ", "CVE-2024-3094"),
        ("mutex", "  Global\\MUTEX ", "global\\mutex"),
        ("asn", "AS13335", "as13335"),
    ],
)
def test_canonical_indicator_rules(type_: str, value: str, canonical: str) -> None:
    """Each indicator type is reduced to its canonical value."""
    assert canonical_indicator(type_, value) == canonical


@given(st.text(max_size=12), st.text())
def test_canonical_indicator_never_raises(type_: str, value: str) -> None:
    """canonical_indicator returns a string for any type and value."""
    for t in (type_, "url", "domain", "ipv4", "ipv6", "email", "sha256", "cve"):
        assert isinstance(canonical_indicator(t, value), str)


# -- fingerprint ---------------------------------------------------------------------------------


def test_fingerprint_is_stable_hex() -> None:
    """The fingerprint is a 64-character hex SHA-256 and does not change between calls."""
    fp = fingerprint(DISINFO)
    assert len(fp) == 64 and set(fp) <= set("0123456789abcdef")
    assert fingerprint(copy.deepcopy(DISINFO)) == fp


def test_fingerprint_known_value() -> None:
    """The serialisation is frozen: a change here breaks dedup against stored fingerprints."""
    assert fingerprint(THREAT) == (
        "ad4f6d67d30e34bf5e3d048982464f75da3afad96a62484dbe3be3b9a6293053"
    )


def test_fingerprint_ignores_reporter_specific_fields() -> None:
    """Title, summary, severity, tlp, languages, tags, dates, share, ids do not count."""
    other = copy.deepcopy(DISINFO)
    other.update(
        id="ba-cert-9",
        revision=3,
        title="Lažna vijest o trupama NATO-a",
        summary="Drugi sažetak",
        severity="low",
        tlp="AMBER",
        languages=["sr-Latn"],
        tags=[],
        observed_at="2026-11-22T00:00:00Z",
        valid_until="2027-01-01T00:00:00Z",
        share={"withhold_from": ["AL"], "recipients": []},
        narrative="Something else entirely",
        media_hashes=[],
    )
    other["claims"] = [{"text": "NATO gomila trupe kod Zvečana!", "language": "sr-Latn"}]
    other["urls"] = ["https://NEWS.example/article?utm_medium=x&id=77#top"]
    assert fingerprint(other) == fingerprint(DISINFO)


def test_fingerprint_url_indicator_equals_canonical_spelling() -> None:
    """Threat alerts whose indicators differ only in spelling share a fingerprint."""
    other = copy.deepcopy(THREAT)
    other["indicators"] = [
        {"type": "IPv4", "value": " 203.0.113.7"},
        {"type": "url", "value": "HTTPS://e-albania-gov.example:443/login/"},
        {"type": "domain", "value": "E-ALBANIA-GOV.example."},
        {"type": "domain", "value": "e-albania-gov.example"},
    ]
    assert fingerprint(other) == fingerprint(THREAT)


@pytest.mark.parametrize(
    "change",
    [
        lambda a: a["indicators"][2].update(value="203.0.113.8"),
        lambda a: a["indicators"].pop(),
        lambda a: a["indicators"].append({"type": "cve", "value": "CVE-2024-3094"}),
        lambda a: a.update(kind="disinformation"),
    ],
)
def test_fingerprint_changes_with_content(change) -> None:
    """Changing, removing or adding an indicator, or the kind, changes the fingerprint."""
    other = copy.deepcopy(THREAT)
    change(other)
    assert fingerprint(other) != fingerprint(THREAT)


def test_fingerprint_narrative_only_alerts_differ() -> None:
    """Alerts with only a narrative are told apart by it, across spellings of the same one."""
    a = {"kind": "disinformation", "narrative": "Вакцине садрже чипове"}
    b = {"kind": "disinformation", "narrative": "Vakcine sadrže čipove."}
    c = {"kind": "disinformation", "narrative": "Izbori su pokradeni"}
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


def test_fingerprint_narrative_ignored_when_claims_exist() -> None:
    """With claims, URLs or indicators present the narrative does not count."""
    other = copy.deepcopy(DISINFO)
    other["narrative"] = "A differently worded narrative"
    assert fingerprint(other) == fingerprint(DISINFO)


@pytest.mark.parametrize(
    "alert",
    [
        {},
        {"kind": "threat"},
        {"kind": "threat", "indicators": []},
        {"kind": "disinformation", "claims": [{"text": ""}], "urls": [""]},
        {"kind": 5, "indicators": [None, {"type": None}], "urls": [3], "claims": "x"},
    ],
)
def test_fingerprint_and_link_keys_tolerate_missing_fields(alert: dict) -> None:
    """Missing, empty or mistyped fields do not make fingerprint or link_keys raise."""
    assert len(fingerprint(alert)) == 64
    assert isinstance(link_keys(alert), list)


_indicator = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["url", "domain", "ipv4", "ipv6", "email", "sha256", "cve", "x"]),
        "value": st.text(max_size=30),
    }
)
_alerts = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["threat", "disinformation"]),
        "indicators": st.lists(_indicator, max_size=5),
        "urls": st.lists(st.one_of(_urls, st.text(max_size=20)), max_size=4),
        "claims": st.lists(st.fixed_dictionaries({"text": st.text(max_size=40)}), max_size=3),
        "media_hashes": st.lists(
            st.fixed_dictionaries(
                {"algorithm": st.text(max_size=10), "value": st.text(max_size=70)}
            ),
            max_size=3,
        ),
        "narrative": st.text(max_size=30),
    }
)


@given(_alerts, st.randoms(use_true_random=False))
def test_fingerprint_ignores_order_and_repeats(alert: dict, rnd: random.Random) -> None:
    """Shuffling and repeating entries of the lists leaves fingerprint and link keys unchanged."""
    other = copy.deepcopy(alert)
    for field in ("indicators", "urls", "claims", "media_hashes"):
        items = other[field] + other[field][:1]
        rnd.shuffle(items)
        other[field] = items
    assert fingerprint(other) == fingerprint(alert)
    assert link_keys(other) == link_keys(alert)


@given(_serbian_words, st.lists(_indicator, max_size=3))
def test_fingerprint_meets_across_scripts(words: list[str], indicators: list[dict]) -> None:
    """A claim spelled in Cyrillic or in Latin gives the same fingerprint and claim key."""
    text = " ".join(words)
    cyr = {"kind": "disinformation", "indicators": indicators, "claims": [{"text": text}]}
    lat = copy.deepcopy(cyr)
    lat["claims"] = [{"text": to_serbian_latin(text)}]
    assert fingerprint(cyr) == fingerprint(lat)
    assert link_keys(cyr) == link_keys(lat)


@given(st.ip_addresses(v=4), st.ip_addresses(v=4))
def test_fingerprint_differs_when_an_indicator_differs(a, b) -> None:
    """Two threat alerts with different IP indicators do not share a fingerprint."""
    fa = fingerprint({"kind": "threat", "indicators": [{"type": "ipv4", "value": str(a)}]})
    fb = fingerprint({"kind": "threat", "indicators": [{"type": "ipv4", "value": str(b)}]})
    assert (fa == fb) == (a == b)


# -- link_keys -----------------------------------------------------------------------------------


def test_link_keys_for_api_examples() -> None:
    """The API.md examples give their URL, domain, IP, hash and claim keys."""
    claim = normalise_claim("NATO gomila trupe kod Zvečana")
    assert claim == "nato gomila trupe kod zvecana"
    assert link_keys(DISINFO) == [
        "claim:6b08043760caff532c7694a7ab89059bc9a03cb447fd81c2fb3961e3b63ddc46",
        "domain:news.example",
        "hash:sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "url:https://news.example/article?id=77",
    ]
    assert link_keys(THREAT) == [
        "domain:e-albania-gov.example",
        "ip:203.0.113.7",
        "url:https://e-albania-gov.example/login",
    ]


def test_link_keys_skip_platform_domains() -> None:
    """Platform hosts give no domain key, but their full URLs still link."""
    alert = {
        "kind": "disinformation",
        "urls": [
            "https://t.me/example_channel/123",
            "https://www.facebook.com/some.page/posts/1",
            "https://m.youtube.com/watch?v=abc",
            "https://x.com/someone/status/1",
        ],
        "indicators": [{"type": "domain", "value": "TikTok.com"}],
    }
    keys = link_keys(alert)
    assert not [k for k in keys if k.startswith("domain:")]
    assert "url:https://t.me/example_channel/123" in keys
    assert len(keys) == 4


def test_link_keys_domain_drops_www_and_port() -> None:
    """A URL's domain key is its host without www., userinfo and port."""
    keys = link_keys({"kind": "threat", "urls": ["https://u@WWW.Phish.example:8443/a"]})
    assert "domain:phish.example" in keys


def test_link_keys_ip_host_gives_ip_key() -> None:
    """A URL on an IP address links through an ip key, as an ip indicator does."""
    a = link_keys(
        {"kind": "threat", "indicators": [{"type": "url", "value": "http://[2001:DB8::1]/x"}]}
    )
    b = link_keys({"kind": "threat", "indicators": [{"type": "ipv6", "value": "2001:db8:0::1"}]})
    assert "ip:2001:db8::1" in a
    assert b == ["ip:2001:db8::1"]


def test_link_keys_hashes_and_cves() -> None:
    """Media hashes and hash indicators share one key space; CVEs are uppercased."""
    value = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
    a = link_keys(
        {"kind": "disinformation", "media_hashes": [{"algorithm": "SHA-256", "value": value}]}
    )
    b = link_keys(
        {
            "kind": "threat",
            "indicators": [
                {"type": "sha256", "value": value},
                {"type": "cve", "value": "cve-2024-3094"},
            ],
        }
    )
    assert a == [f"hash:sha256:{value.lower()}"]
    assert b == ["cve:CVE-2024-3094", f"hash:sha256:{value.lower()}"]


def test_link_keys_hash_unsafe_and_long_values() -> None:
    """Values with spaces or over 200 bytes are replaced by their SHA-256."""
    long_url = "https://n.example/" + "a" * 300
    keys = link_keys(
        {
            "kind": "threat",
            "urls": [long_url, "not a url"],
            "indicators": [{"type": "cve", "value": "CVE 2024"}],
        }
    )
    assert len(keys) == 4
    assert all(k.split(":")[1] == "sha256" for k in keys if not k.startswith("domain:"))
    assert "domain:n.example" in keys


@given(_alerts)
@settings(max_examples=300)
def test_link_keys_are_safe_redis_keys(alert: dict) -> None:
    """Link keys are sorted, distinct, printable ASCII without whitespace, at most 200 bytes."""
    keys = link_keys(alert)
    assert keys == sorted(set(keys))
    for key in keys:
        assert len(key.encode()) <= 200
        assert all("!" <= ch <= "~" for ch in key)
        assert "{" not in key and "}" not in key


@given(st.text(), st.text(), st.text())
def test_functions_never_raise_on_arbitrary_text(a: str, b: str, c: str) -> None:
    """Arbitrary text anywhere in an alert never makes the canon functions raise."""
    alert = {
        "kind": a,
        "indicators": [{"type": a, "value": b}, {"type": "url", "value": c}],
        "urls": [b, c],
        "claims": [{"text": a}, {"text": c}],
        "media_hashes": [{"algorithm": a, "value": b}],
        "narrative": c,
    }
    assert isinstance(fingerprint(alert), str)
    assert isinstance(link_keys(alert), list)
    assert isinstance(canonical_url(a), str)
    assert isinstance(normalise_claim(b), str)


@pytest.mark.parametrize("alert", [THREAT, DISINFO])
def test_content_keys_is_fingerprint_and_index_keys(alert: dict) -> None:
    """The one-pass content_keys used on the ingest path agrees with the two separate functions."""
    assert content_keys(alert) == (fingerprint(alert), index_keys(alert))
    assert set(index_keys(alert)) <= set(link_keys(alert))


_shared_urls = st.sampled_from(
    [
        "https://news.example/a",
        "https://www.news.example/b",
        "http://203.0.113.7/x",
        "https://t.me/channel/5",
        "https://youtube.com/watch?v=1",
        "https://other.example/a",
    ]
)
_linkable = st.fixed_dictionaries(
    {
        "kind": st.just("disinformation"),
        "urls": st.lists(_shared_urls, max_size=3),
        "indicators": st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["url", "domain", "ipv4"]),
                    "value": st.one_of(
                        _shared_urls, st.sampled_from(["news.example", "t.me", "203.0.113.7"])
                    ),
                }
            ),
            max_size=3,
        ),
    }
)


@given(_linkable, _linkable)
@settings(max_examples=300)
def test_index_keys_relate_the_same_alerts_as_link_keys(a: dict, b: dict) -> None:
    """Two alerts share an index key exactly when they share a link key."""
    shares_link = bool(set(link_keys(a)) & set(link_keys(b)))
    shares_index = bool(set(index_keys(a)) & set(index_keys(b)))
    assert shares_index == shares_link


# Any code point, lone surrogates included; or ASCII only, DEL and control characters included.
_any_text = st.text(st.characters(exclude_categories=()))
_ascii_text = st.text(st.characters(max_codepoint=127) | st.sampled_from('\x7f\x00"\\'))


@given(st.data())
def test_fingerprint_input_is_the_reference_json(data: st.DataObject) -> None:
    """The fast serialisation writes exactly what json.dumps(ensure_ascii=True) writes."""
    text = data.draw(st.sampled_from([_ascii_text, _any_text]))
    indicators = data.draw(st.lists(st.tuples(st.sampled_from(["url", "x"]), text), max_size=4))
    claims = data.draw(st.lists(text, max_size=3))
    narrative = data.draw(text)
    content = _Content(
        kind="threat",
        indicators=tuple(indicators),
        urls=frozenset(v for _, v in indicators),
        claims=frozenset(claims),
        narrative=narrative,
    )
    reference = json.dumps(
        [
            "alerthub-fingerprint-1",
            "threat",
            sorted({f"{t}:{v}" for t, v in indicators}),
            sorted(content.urls),
            sorted(content.claims),
            narrative,
        ],
        ensure_ascii=True,
        separators=(",", ":"),
    ).encode()
    assert _fingerprint_input(content) == reference


def test_link_score_is_a_stable_52_bit_integer() -> None:
    """Scores must not change between processes or releases: stored link indexes rely on them."""
    assert link_score("domain:e-albania-gov.example") == "1447604934567978"
    keys = link_keys(THREAT) + link_keys(DISINFO)
    scores = [int(link_score(k)) for k in keys]
    assert all(0 <= s < 2**52 and float(s) == s for s in scores)
    assert len(set(scores)) == len(set(keys))
