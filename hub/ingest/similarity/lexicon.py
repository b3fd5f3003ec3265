"""Word lists for comparing claims in the region's languages: function words, the decorations
that copies add ("HITNO:", "(izvor: Telegram)"), the Croatian and Bosnian words that differ from
Serbian ones, ekavian and ijekavian reflexes, months, units and number words. Every word is
written in its folded form (hub.ingest.claim_text.normalise_claim: Latin, lower case, no
diacritics), since that is what it is compared with. Pure; written for alerthub (Apache-2.0)."""

from __future__ import annotations

import re

# Language groups: the lemmatiser's language codes (simplemma), by BCP 47 primary subtag.
# Serbo-Croatian in all its standards is one language to the lemmatiser ("hbs"); Montenegrin
# (cnr) and the old "sh" tag are its standards too.
HBS, MK, SQ, EN = "hbs", "mk", "sq", "en"
LANGUAGE_GROUPS = {
    "sr": HBS,
    "hr": HBS,
    "bs": HBS,
    "cnr": HBS,
    "sh": HBS,
    "hbs": HBS,
    "mk": MK,
    "sq": SQ,
    "als": SQ,
    "aln": SQ,
    "en": EN,
}

# Function words, which two claims share without meaning the same thing. Negations (ne, nije,
# nuk, not) are not among them: "X did" and "X did not" are one story, told and refuted.
_STOPWORDS = {
    HBS: """a ako ali bi bih bila bile bili bilo bio biti bude budu da do dok ga gde gdje i ih
        iz ja je jer jesu joj jos kad kada kako kao ko koja koje koji kojim kojima koju kod
        li ma mi mu na nad nam nas nasi nego neki nekoliko njega njemu njen njena njeni njih
        njihov njihova njihovi o od oko on ona one oni ono ova ove ovi ovo ovaj pa po pod pre
        prema pri pro sa se sebe si sta sto su sva sve svi svoj svoja svoje svoju ta tako tamo
        te tek ti to toga tog tom tu u uz vam vas vec za zbog ce cu ces cemo cete sam smo ste
        jedan jedna jedno biti imati moci htjeti hteti ovaj taj onaj koji sav svoj on ona""",
    MK: """a i na vo od so za da se e kje ja go gi mu im ni vi toj taa tie toa ova ovoj ovaa
        ovie deka kako koj koja koe koi kade koga ili no ama pa po pri kon niz do pred bez sum
        si sme ste bese bea bil bila bile bilo bidejki samo uste vekje cie sekoj nekoj eden
        edna edno nivni negov nejzin""",
    SQ: """a e i te ne me se per nga ka qe si do u jane eshte ishte kane ka kjo ky ato ata
        keto keta ate atij asaj tij saj tyre nje nje disa por dhe ose edhe as mbi nen pas para
        prej deri tek te cili cila cilet cilat kur ku sa si jo po mund duke do kam kishte
        kemi keni""",
    EN: """a an the and or but if of to in on at by for with from as is are was were be been
        being it its this that these those he she they them his her their we our you your i
        me my not no will would shall should can could may might must has have had do does
        did so than then there here about into over under after before while who whom which
        what when where why how all any some such only also just very""",
}
STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split()) for lang, words in _STOPWORDS.items()
}
ANY_STOPWORD = frozenset().union(*STOPWORDS.values())

# Words that copies add around the claim without changing it: "HITNO:", "BREAKING", "ШОК",
# "pogledajte", "podelite". Dropped wherever they stand.
DECORATIONS = frozenset(
    [
        "hitno",
        "hitnoo",
        "urgentno",
        "udarno",
        "ekskluzivno",
        "ekskluziva",
        "sok",
        "skandal",
        "skandalozno",
        "pogledajte",
        "pogledaj",
        "podelite",
        "podijelite",
        "proslijedite",
        "prosledite",
        "sirite",
        "delite",
        "dijelite",
        "vazno",
        "paznja",
        "itno",
        "sok",
        "vnimanie",
        "spodelete",
        "proslededete",
        "urgjent",
        "urgjente",
        "lajm",
        "flash",
        "breaking",
        "urgent",
        "alert",
        "exclusive",
        "shocking",
        "shock",
        "share",
        "must",
        "watch",
        "viral",
        "vazhdo",
        "shperndaje",
        "shperndani",
        "ndani",
        "kujdes",
    ]
)
# A claim's source, appended by a copy: "(izvor: Telegram)", "source: X", "burimi: ...". The
# marker and what follows it are dropped when they end the claim (at most SOURCE_TAIL words).
SOURCE_MARKERS = frozenset(
    ["izvor", "izvori", "source", "sources", "burimi", "burim", "via", "preko"]
)
SOURCE_TAIL = 5

# Croatian and Bosnian words (folded) with the Serbian word a Serbian telling would use.
STANDARD_VARIANTS = {
    "tisuca": "hiljada",
    "tisucu": "hiljada",
    "tko": "ko",
    "kruh": "hleb",
    "hljeb": "hleb",
    "vlak": "voz",
    "zrakoplov": "avion",
    "glazba": "muzika",
    "sveuciliste": "univerzitet",
    "kolodvor": "stanica",
    "tjedan": "nedelja",
    "tocka": "tacka",
    "opcina": "opstina",
    "opci": "opsti",
    "znanost": "nauka",
    "povijest": "istorija",
    "historija": "istorija",
    "kemija": "hemija",
    "obitelj": "porodica",
    "otok": "ostrvo",
    "zrak": "vazduh",
    "kazaliste": "pozoriste",
    "ravnatelj": "direktor",
    "veleposlanstvo": "ambasada",
    "veleposlanik": "ambasador",
    "izvanredan": "vanredan",
    "prosvjed": "protest",
    "prosvjednik": "demonstrant",
    "nogomet": "fudbal",
    "sigurnost": "bezbednost",
    "sigurnosni": "bezbednosni",
    "cjepivo": "vakcina",
    "cijepljenje": "vakcinacija",
    "cijepiti": "vakcinisati",
    "uhititi": "uhapsiti",
    "uhicen": "uhapsen",
    "uhicenje": "hapsenje",
    "kava": "kafa",
    "tvrtka": "firma",
    "postotak": "procenat",
    "posto": "odsto",
    "mirovina": "penzija",
    "placa": "plata",
    "plin": "gas",
    "vojarna": "kasarna",
    "putovnica": "pasos",
    "osobna": "licna",
    "poduzece": "preduzece",
    "cesta": "put",
    "autocesta": "autoput",
    "europa": "evropa",
    "europski": "evropski",
    "europska": "evropska",
    "eur": "euro",
    "evro": "euro",
    "eura": "euro",
    "evra": "euro",
    "sudac": "sudija",
    "svecenik": "svestenik",
    "izbjeglica": "izbeglica",
    "predsjednik": "predsednik",
    "zastitni": "zastitni",
}

_CONSONANT_JE = re.compile(r"(?<=[bcdfghklmnprstvz])je")


def ekavian(word: str) -> str:
    """A folded Serbo-Croatian word with its ijekavian reflexes of yat made ekavian: "ije" and
    "je" after a consonant become "e" (mlijeko, mleko → mleko; mjesto → mesto; djeca → deca).
    Applied to both claims compared, so that the few words it folds too far fold alike."""
    if "je" not in word:
        return word
    return _CONSONANT_JE.sub("e", word.replace("ije", "e"))


# Months, by number, in English and in the folded forms of the region's languages (Croatian
# has month names of its own; Macedonian and Albanian spell the Latin ones their way).
_MONTHS = {
    1: "january jan januar januara sijecanj sijecnja janar janari januari",
    2: "february feb februar februara veljaca veljace shkurt shkurti fevruari",
    3: "march mar mart marta ozujak ozujka mars marsi",
    4: "april apr aprila travanj travnja prill prilli",
    5: "may maj maja svibanj svibnja maji",
    6: "june jun juna juni lipanj lipnja qershor qershori",
    7: "july jul jula juli srpanj srpnja korrik korriku",
    8: "august aug avgust avgusta kolovoz kolovoza gusht gushti",
    9: "september sep sept septembar septembra rujan rujna shtator shtatori septemvri",
    10: "october oct oktobar oktobra listopad listopada tetor tetori oktomvri",
    11: "november nov novembar novembra studeni studenoga nentor nentori noemvri",
    12: "december dec decembar decembra prosinac prosinca dhjetor dhjetori dekemvri",
}
MONTHS = {word: month for month, words in _MONTHS.items() for word in words.split()}
# Abbreviations that are also words ("mar", "jun", "maj", "sep") count as months only right
# after a day number.
MONTH_ABBREVIATIONS = frozenset(
    {"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "maj",
     "maji", "mars", "may"}
)  # fmt: skip

# Units after (or, for symbols, around) a number, by code.
_UNITS = {
    "eur": "euro euros eur eura evra evro evri euroja eurove €",
    "usd": "dollar dollars usd dolar dolara dolari dollare $",
    "rsd": "dinar dinara dinari rsd",
    "mkd": "denar denari denara mkd",
    "all": "lek leke leku",
    "bam": "km maraka marke",
    "pct": "percent per cent odsto posto procenat procenata postotak procenti qind %",
    "people": "people persons ljudi osoba lica covek ljudi njerez lugje liuge",
    "troops": "soldiers troops vojnika vojnici ushtare ushtaret vojnici",
    "km": "kilometers kilometres kilometara kilometra kilometri",
    "ton": "tons tonnes tona toni",
}
UNITS = {word: unit for unit, words in _UNITS.items() for word in words.split()}
# Number words that multiply the number before them ("500 hiljada" is 500000).
MULTIPLIERS = {
    "hiljada": 1000,
    "hiljade": 1000,
    "hiljadu": 1000,
    "tisuca": 1000,
    "tisuce": 1000,
    "iljadi": 1000,
    "iljada": 1000,
    "mije": 1000,
    "thousand": 1000,
    "milion": 1_000_000,
    "miliona": 1_000_000,
    "milijun": 1_000_000,
    "milijuna": 1_000_000,
    "milioni": 1_000_000,
    "million": 1_000_000,
    "milione": 1_000_000,
    "milijarda": 1_000_000_000,
    "milijardi": 1_000_000_000,
    "miliarde": 1_000_000_000,
    "billion": 1_000_000_000,
}
