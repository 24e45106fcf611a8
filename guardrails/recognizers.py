"""Recognizers for the shapes customer-service text takes, beside Presidio's own.

- Phone numbers by their written shape, assigned area code or not: libphonenumber (Presidio's
  phone recognizer) rejects numbers whose area code is unassigned, and a customer's typo or a
  new range is still their number.
- Names after the words that introduce them ("Name:", "this is", "on behalf of my mother",
  "ship it to", a signature after "Thanks,"), in capitals or, for a first name we know, in
  lower case: spaCy's small model misses names in forms and chat.
- Street addresses (number-first, as in the UK, US, Canada and Australia; street-first, as in
  Germany and the Netherlands; French "rue"), which spaCy does not tag at all; and whole
  addresses read back from their postcode or PO box.

And `keep_entity`, which drops what is not personal data by default: a bare country or
city the customer asks about (not one they live in), a product called by a first name
("the Carter TV stand"), a brand or carrier, anything with digits tagged as a name.
"""
from __future__ import annotations

import re
from functools import lru_cache

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult
from spacy.lang.en.stop_words import STOP_WORDS

PHONE_CONTEXT = ["phone", "tel", "telephone", "call", "mobile", "cell", "number", "reach", "text", "whatsapp",
                 "contact", "landline", "ring", "cb", "callback", "fax", "line"]
_EXT = r"(?:\s*,?\s*(?:ext\.?|extension|x)\s*\d{1,6})?"


def phone_recognizer() -> PatternRecognizer:
    patterns = [
        # North American: 10 digits in groups, an optional +1 / 1 in front, an optional extension.
        Pattern("nanp", r"(?<![\w+])(?:\+?1[\s.\-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.\-])\d{3}[\s.\-]\d{4}(?!\d)" + _EXT, 0.6),
        Pattern("nanp_plus", r"(?<![\w+])\+1\d{10}(?!\d)" + _EXT, 0.6),
        # International: + and a country code, then 6 to 13 more digits in groups.
        Pattern("international", r"(?<![\w+])\+\d{1,3}(?:[\s.\-]?\(?\d{1,5}\)?){2,6}(?!\d)" + _EXT, 0.55),
        # A national number with its trunk 0: 07700 900123, 06 51 76 68 15, (02) 2421 7098.
        Pattern("national", r"(?<![\w+])(?:\(0\d{1,4}\)|0\d{1,4})(?:[\s.\-]\d{2,4}){2,4}(?!\d)" + _EXT, 0.5),
        # Ten bare digits are a phone number only beside a word like "call" or "tel".
        Pattern("bare", r"(?<![\w+#-])\d{10}(?![\w-])", 0.3),
        # A local number without its area code ("cb 555-0138", "ring 584 2584"), and a Spanish mobile
        # ("639 21 09 41"): also only beside such a word.
        Pattern("local", r"(?<![\w+#./-])\d{3}[\s.\-]\d{4}(?![\w./-])" + _EXT, 0.3),
        Pattern("spanish_mobile", r"(?<![\w+#./-])[6-9]\d{2}(?:[ .]\d{2}){3}(?![\w./-])", 0.3),
    ]
    return _DigitCountRecognizer(supported_entity="PHONE_NUMBER", name="phone_shapes", patterns=patterns,
                                 context=PHONE_CONTEXT)


_DATE_LIKE = re.compile(r"^\d{1,4}[.\-]\d{1,2}[.\-]\d{1,4}$")
# A bare run of digits right after the name of an identifier is that identifier, not a phone number.
_ID_BEFORE = re.compile(r"(?i)\b(?:tracking|order|ref|reference|invoice|batch|serial|sku|item|model|ticket|case|"
                        r"parcel|consignment|part|sn|s/n|p/n|pn)[\s.#:]*(?:no\.?|number|num|#|id)?[\s.#:]*$")


def _long_digit_run(text: str, start: int, end: int) -> bool:
    """The span goes on a run of digits before it, and the run, joined by single spaces or
    hyphens, has more digits than a phone number can have (15)."""
    if not re.search(r"\d[ \-]?$", text[:start]):
        return False  # it starts a number (an extension's digits after it are its own)
    a = re.search(r"(?:\d[ \-]?)*$", text[:start]).start()
    b = end + re.match(r"(?:[ \-]?\d)*", text[end:]).end()
    return sum(ch.isdigit() for ch in text[a:b]) > 15


_VERSION_BEFORE = re.compile(r"(?i)\b(?:version|ver\.?|build|firmware|release|app|v)[\s.:#]*$")


class _DigitCountRecognizer(PatternRecognizer):
    """A phone number has 7 to 15 digits (its extension aside), and is not a date."""

    def validate_result(self, pattern_text: str) -> bool | None:
        number = re.split(r"(?i)\s*,?\s*(?:ext\.?|extension|x)\s*\d", pattern_text)[0]
        return 7 <= sum(ch.isdigit() for ch in number) <= 15 and not _DATE_LIKE.match(number.strip())


class _RuleRecognizer(EntityRecognizer):
    """A recognizer of rules alone: one entity, English, nothing to load."""

    def __init__(self, entity: str, name: str) -> None:
        super().__init__(supported_entities=[entity], name=name, supported_language="en")

    def load(self) -> None:
        pass


# --- IBANs ---------------------------------------------------------------------------------------
_IBAN_CANDIDATE = re.compile(r"(?i)\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{1,4}){2,8}\b")
_IBAN_GROUP = re.compile(r"[A-Za-z0-9]+")


def iban_valid(value: str) -> bool:
    """The IBAN checksum (ISO 13616: mod 97 of the rearranged digits is 1)."""
    compact = re.sub(r"\s", "", value).upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum():
        return False
    digits = "".join(str(int(ch, 36)) for ch in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


class TrimmedIbanRecognizer(_RuleRecognizer):
    """An IBAN with a word right after it ("TO IBAN ES57 8579 ... 0657 PLEASE"): Presidio's own
    recognizer reads the word's first letters as one more group, and then the checksum fails.
    Here the groups at the end are dropped, one at a time, until the checksum holds."""

    def __init__(self) -> None:
        super().__init__("IBAN_CODE", "trimmed_iban")

    def analyze(self, text: str, entities, nlp_artifacts=None) -> list[RecognizerResult]:
        out = []
        for m in _IBAN_CANDIDATE.finditer(text):
            ends = [g.end() for g in _IBAN_GROUP.finditer(text, m.start(), m.end())]
            end = next((e for e in reversed(ends) if iban_valid(text[m.start():e])), None)
            if end is not None:
                out.append(RecognizerResult("IBAN_CODE", m.start(), end, 0.9))
        return out


# --- names ---------------------------------------------------------------------------------------
TITLES = r"(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Mme|Mlle|M|Herr|Frau|Sr|Sra|Srta|Sig|Dott|Mevr|Dhr)\.?\s+)"
# Words that introduce a person, lower-cased: titles, and relatives named with them ("Aunt Mary").
TITLE_WORDS = frozenset("""mr mrs ms miss mx dr prof sir dame mme mlle m herr frau sr sra srta sig dott mevr dhr rev revd
hon fr father sister brother aunt auntie aunty uncle grandma grandpa granny nana cousin mum mom dad captain capt lt
sgt officer judge pastor rabbi imam""".split())
PARTICLES = frozenset("van von der den de del della di da das dos du la le ter ten te bin binti ibn al el ní "
                      "nic mac ap".split())
RELATIONS = (r"husband|wife|mother|mum|mom|father|dad|son|daughter|partner|colleague|boss|manager|friend|sister|"
             r"brother|grandmother|grandfather|grandma|grandpa|gran|nan|client|aunt|uncle|niece|nephew|neighbour|"
             r"neighbor|flatmate|roommate|assistant|tenant|landlord|carer|fiancé|fiancée|fiance|fiancee|kid|kids|"
             r"child|little\s+one|godson|goddaughter|grandson|granddaughter|stepson|stepdaughter|cousin|auntie")
CUES = [
    r"\b(?:full\s+|customer\s+|account\s+|contact\s+|first\s+|last\s+|sur|fore|card\s?holder\s+|recipient\s+)?"
    r"name(?:\(s\))?(?:\s+on\s+(?:the\s+)?(?:card|account|order|booking|parcel))?\s*[:=\-–—]\s*",
    r"\b[a-z]+_name\s*=\s*\"?",  # key=value logs: customer_name="Luca Choi"
    r"\"(?:name|full_name|fullname|customer|recipient|customer_name|first|last|first_name|last_name|firstname|"
    r"lastname|given_name|family_name|surname|forename)\"\s*:\s*\"",
    r"\b(?:customer|recipient|attn|attention|contact|caller|from|to|cc|applicant|holder|payee|beneficiary|"
    r"signed|agent|claimant|purchaser|buyer|requester|requestor)\s*[:=]\s*\"?",
    r"\b(?:love|lots\s+of\s+love|much\s+love|all\s+my\s+love|xoxo|hugs)\s*,\s*",
    r"\b(?:this\s+is|it's|it\s+is|its|my\s+name\s+is|my\s+name's|name's|i\s+am|i'm|im|i’m|it’s)\s*,?\s+",
    r"\b(?:in|under)\s+(?:my\s+\w+'s\s+|the\s+)?(?:last\s+|first\s+|full\s+|sur)?name(?:\s+of)?,?\s+",
    r"\bon\s+behalf\s+of\s+",
    rf"\b(?:my|our|your)\s+(?:\w+\s+)?(?:{RELATIONS})\s*,?\s+",
    r"\b(?:ship|send|deliver|post|mail|address|forward|dispatch|refund|pay|made\s+out)(?:\s+[\w']+){0,3}?\s+to:?\s+",
    r"\b(?:recipient|addressee|cust|cx|customer|caller|client|spoke\s+(?:to|with)|spoke\s+w/|speak\s+(?:to|with)|"
    r"ask\s+for|account\s+holder|card\s?holder|holder|attn|c/o|care\s+of)\s*[:\-–]?\s+",
    r"\b(?:thanks|thank\s+you|many\s+thanks|regards|best|cheers|kind\s+regards|best\s+regards|sincerely|"
    r"warmly|ta)\s*[,!.]?\s*\n\s*",
    r"\b(?:thanks|regards|cheers|best|sincerely|ta)\s*,\s*",
    r"\b(?:my\s+)?details\s*[:\-]\s*",
    r"(?:^|\n)\s*(?:--|—|–)\s*",
    r"\b(?:hi|hello|hey|dear|yo)\s+",
    r"\bsigned\s+for\s+by\s+",
    r"\b(?:parcel|package|delivery|order|account|subscription|refund|booking)\s+(?:is\s+)?(?:for|under)\s+",
    r"\bleft\s+with\s+(?:my\s+)?(?:neighbou?r\s+)?",
    r"\b(?:account\s+holder|name\s+on\s+the\s+account|card\s?holder|account\s+name)\s+(?:is\s+)?",
    r"\badd\s+",
    r"\bnote\s*:\s*",
    r"\bmy\s+\w+'s,?\s+",
    r"\b(?:speak|talk)\s+soon,?\s+",
    r"\bname\s+from\s+",
    r"\bto\s+(?=[A-Z]{2,}\s+[A-Z])",
]
# A name alone at the very end of a message, after its last sentence: a sign-off.
_END_SIGNOFF = re.compile(r"(?:[.!?]|\n)\s+(?P<at>)(?=[^\W\d_][^\n.!?]{1,60}[.!]?\s*$)")
_CUE = re.compile("(?:" + "|".join(CUES) + r")(?P<title>" + TITLES + r")?", re.IGNORECASE)
_TOKEN = re.compile(r"(?:[^\W\d_]\.\s?)+(?=[\s,;|<>()\"'!?]|$)|[^\W\d_]+(?:['’\-][^\W\d_]+)*")
_GAP = re.compile(r"[ \t]{1,3}")
_IN_PARENS = re.compile(r"\((?P<at>)(?=[^\W\d_][^()\n]{2,60}\))")
_BEFORE_EMAIL = re.compile(r"(?:^|[\s:\"(,])(?P<name>[^\W\d_][^\n<>@,;:\"]{1,60}?)\"?\s*<[^<>\s]+@")
_HERE = re.compile(r"(?:^|[.!?\n]\s*|\b(?:hey|hi|hello|yo|ok|okay|sup|hiya|heya),?\s+)(?P<at>)(?=\S+(?:\s+\S+){0,3}\s+(?:here|again)\b)",
                   re.IGNORECASE)
# "yo tomasz kowalczyk here": a self-introduction, where a lower-case name is still a name.
_INTRODUCED = re.compile(r"[ \t]+(?:here|again)\b", re.IGNORECASE)
_SURNAME_FIRST = re.compile(r"(?:^|\n)[ \t]*(?P<last>[A-ZÀ-Þ][A-ZÀ-Þ'’\-]+(?:[ \t][A-ZÀ-Þ][A-ZÀ-Þ'’\-]+)?)"
                            r",[ \t]*(?P<first>[A-ZÀ-Þ][a-zà-ÿ]+(?:-[A-Za-zà-ÿ]+)?)\b")
# A name alone on the line(s) before a phone's sign-off: "Nour\n\nSent from my iPhone".
_SENT_FROM = re.compile(r"(?:^|\n)[ \t]*(?P<at>)(?=[^\W\d_][^\n]{0,40}\n\s*Sent from my\b)")
# The fields of a CSV, TSV or pipe row before its e-mail field: "LG-44208569,Yu-na Choi,choiy@...",
# "Ochoa\tYesenia\tyesenia.o@...", "\"Hollister, Rusty\",rhollister@...".
_ROW_WITH_EMAIL = re.compile(r"(?m)^(?P<fields>[^\n@]{2,120}?)[,;\t|][ \t]*\"?[^\s,;\t|\"@]+@[^\s,;\t|\"]+\"?[ \t]*(?:[,;\t|]|$)")
_FIELD = re.compile(r"\"[^\"\n]*\"|[^,;\t|]+")
_DELIMITER = re.compile(r"[,;\t|]")
_NAME_WORD = re.compile(r"[^\W\d_]+(?:['’.\-][^\W\d_]*)*")
_LINE_HEAD = re.compile(r"(?:^|\n)(?:[A-Z]+[-\d]+[,;\t]\s*)?(?P<at>)(?=[^\n,;\t]+[,;\t]\s*\S*[@+\d])")

# Capitalised words that start a sentence or a label, never a name.
NOT_NAMES = frozenset("""
i i'm im it its the a an and or but so if my our your their his her we you they he she this that these those
there here hi hello hey dear thanks thank regards best cheers please sorry yes no ok okay order orders item
items product products customer customers name email e-mail phone tel mobile address account card number
ref reference re fw fwd subject sent from to cc date time today tomorrow yesterday monday tuesday wednesday
thursday friday saturday sunday mon tue tues wed thu thur thurs fri sat sun january february march april
may june july august september october november december jan feb mar apr jun jul aug sep sept oct nov dec
just still also again writing calling contacting following looking trying wondering hoping waiting having getting not never very really good great
fine happy glad urgent asap help support team service services sales billing accounts procurement finance
returns refunds delivery shipping courier warehouse office manager director operations ltd llc inc gmbh co
company store shop online larkspur goods rewards pantry club new old big small first last next can could
would will shall should must might may do does did done is are was were be been being have has had get got
on in at by of for with about as up down out off over under after before until tracking parcel here
package box return refund exchange warranty claim issue problem question query request complaint yo lol
original message wrote forwarded subject attached attachment kind many senior head customer-service
sir madam queen
gift gifts wrap wrapping label labels status shipped processing received delivered dispatched supervisor
showroom showrooms discount standard code codes
mum mom mummy mommy dad daddy auntie aunty aunt uncle grandma grandpa granny
created exception pending transit
""".split())
_STOP_AFTER = frozenset("""and from at here again calling writing with who about re regarding i my is was
called wants need needs ordered bought live lives living in on of to for via lol please thanks the a an
but so if it that this has had have will would can could""".split())


def _faker_names(attrs: tuple[str, ...], keep=lambda name: True) -> set[str]:
    """Lower-cased names (those `keep` accepts as written) from every Faker locale's person provider."""
    import importlib
    import pkgutil

    import faker.providers.person as people

    names: set[str] = set()
    for module in pkgutil.iter_modules(people.__path__):
        try:
            provider = importlib.import_module(f"{people.__name__}.{module.name}").Provider
        except (ImportError, AttributeError):
            continue
        for attr in attrs:
            values = getattr(provider, attr, ())
            if not isinstance(values, (dict, list, tuple, set, frozenset)):
                continue
            names.update(n.lower() for n in (values.keys() if isinstance(values, dict) else values) if keep(n))
    return names


@lru_cache(maxsize=1)
def first_names() -> frozenset[str]:
    """First names, lower-cased: what tells a name in lower-case chat ("this is chase barnes")
    from an ordinary word."""
    names = _faker_names(("first_names", "first_names_male", "first_names_female"),
                         lambda name: name.replace("-", "").isalpha())
    return frozenset(n for n in names if len(n) > 1 and n not in NOT_NAMES)


# Big cities customers name as destinations ("do you deliver to Helsinki?"): a place, not a person.
CITIES = """London Paris Berlin Madrid Rome Vienna Zurich Geneva Amsterdam Rotterdam Brussels Copenhagen
Stockholm Oslo Helsinki Reykjavik Dublin Edinburgh Glasgow Manchester Birmingham Liverpool Leeds Bristol
Cardiff Belfast Lisbon Porto Barcelona Valencia Milan Naples Turin Florence Venice Munich Hamburg Frankfurt
Cologne Stuttgart Prague Warsaw Krakow Budapest Bucharest Athens Istanbul Moscow Kyiv Tokyo Osaka Kyoto
Seoul Beijing Shanghai Shenzhen Singapore Bangkok Jakarta Manila Mumbai Delhi Bengaluru Bangalore Chennai
Hyderabad Kolkata Dubai Doha Riyadh Cairo Lagos Nairobi Johannesburg Cape Town Sydney Melbourne Brisbane
Perth Adelaide Auckland Wellington Toronto Montreal Vancouver Calgary Ottawa Chicago Boston Seattle Denver
Austin Dallas Houston Miami Atlanta Phoenix Portland Detroit Philadelphia Los Angeles San Francisco
San Diego New York Washington Mexico City Bogota Lima Santiago Buenos Aires Sao Paulo Rio de Janeiro""".replace(
    "\n", " ")
CITIES = tuple(CITIES.split(" ")) + ("Cape Town", "Los Angeles", "San Francisco", "San Diego", "New York",
                                      "Mexico City", "Buenos Aires", "Sao Paulo", "Rio de Janeiro")


@lru_cache(maxsize=1)
def places() -> frozenset[str]:
    """Countries and US states (Faker's lists), lower-cased: "ship to Canada" names no one."""
    from faker.providers.address.en_US import Provider

    names = {*Provider.countries, *Provider.states, "UK", "USA", "US", "EU", "Europe", "Asia", "Africa",
             "America", "North America", "South America", "Australia", "England", "Scotland", "Wales",
             "Northern Ireland", "Great Britain", "Britain", "Ireland", "Holland", *CITIES}
    return frozenset(n.lower() for n in names)


_STRONG = re.compile(r"(?i)name|this\s+is|it'?s|it’s|i\s+am|i'?m|i’m|signed|behalf|holder|attn|recipient|"
                     r"applicant|payee|beneficiary|regards|thanks|thank|cheers|sincerely|dear|claimant|purchaser|"
                     r"buyer|love|xoxo|hugs|spoke|\"(?:first|last|surname|forename|given_name|family_name)\"|"
                     r"husband|wife|mother|mum|mom|father|dad|son|daughter|partner|neighbou?r")


def _known_first(name: str) -> bool:
    words = [w.strip(".,").lower() for w in name.split()]
    return any(w in first_names() for w in words[:2] if len(w) > 1)


@lru_cache(maxsize=1)
def last_names() -> frozenset[str]:
    """Surnames, lower-cased (a bracketed "(Zoe Villanueva)" is a name, "(Pearl District)" is not)."""
    return frozenset(_faker_names(("last_names", "last_romanized_names")))


def _initial(token: str) -> bool:
    return token.endswith(".") or (len(token) == 1 and token.isalpha())


def _surname_follows(text: str, end: int, word: str) -> bool:
    """"spoke w/ lovely bautista": a word we don't know as a first name, then a surname we know."""
    if word in NOT_NAMES or word in STOP_WORDS or word in _STOP_AFTER:
        return False
    m = _ANY_WORD.match(text, end)
    following = m.group(1) if m and m.group(1).islower() else ""
    return following in last_names() and following not in NOT_NAMES and following not in STOP_WORDS


def name_at(text: str, at: int, lower_ok: bool = True) -> int | None:
    """Where a name starting at `at` ends, or None. Capitalised words (with particles and
    initials between them), or, in lower-case text, a known first name and what follows it."""
    ends: list[int] = []
    tokens: list[str] = []
    pos = at
    lower = None
    while len(tokens) < 5:
        m = _TOKEN.match(text, pos)
        if not m:
            break
        token = m.group(0).rstrip()
        word = token.lower().strip(".")
        if lower is None:
            lower = token[0].islower()
            if lower and not (lower_ok and (word in first_names() or word.split("-")[0] in first_names()
                                            or _initial(token) or _surname_follows(text, m.end(), word))):
                return None
        if not lower:
            if token[0].isupper():
                if word in NOT_NAMES and not _initial(token):
                    if not tokens:
                        return None
                    break
            elif word not in PARTICLES:
                break
        else:
            named = sum(t.lower().strip(".") not in PARTICLES for t in tokens)
            if (word in NOT_NAMES or word in _STOP_AFTER or named >= 4) and word not in PARTICLES:
                break
        tokens.append(token)
        if word not in PARTICLES:
            ends.append(m.start() + len(token))
        gap = _GAP.match(text, m.end()) if not token.endswith(" ") else None
        pos = gap.end() if gap else m.start() + len(m.group(0))
        if not gap and not m.group(0).endswith(" "):
            break
    if not ends or all(_initial(t) for t in tokens if t.lower().strip(".") not in PARTICLES):
        return None
    return ends[-1]


# A title in lower-case chat ("reply to mrs harrison", "dear ms martinez-hawkins"): what follows is a
# name even when it is no first name we know. "dr" and "prof" need their full stop ("41 meadow dr").
_LOWER_TITLE = re.compile(r"\b(?:mr|mrs|ms|mx|mme|herr|frau|sra|srta)\.?\s+(?=[a-z])|\b(?:dr|prof|sr)\.\s*(?=[a-z])")
_LOWER_WORD = re.compile(r"[a-z][^\W\d_]*(?:['’\-][^\W\d_]+)*")


def _titled_name_end(text: str, at: int) -> int | None:
    """Where a lower-case name after a title ends: up to three words (particles aside)."""
    end, named, pos = None, 0, at
    while named < 3:
        m = _LOWER_WORD.match(text, pos)
        word = m.group(0) if m else ""
        if not m or (word not in PARTICLES and (word in STOP_WORDS or word in NOT_NAMES or word in _STOP_AFTER)):
            break
        if word not in PARTICLES:
            named, end = named + 1, m.end()
        gap = _GAP.match(text, m.end())
        if not gap:
            break
        pos = gap.end()
    return end


class CueNameRecognizer(_RuleRecognizer):
    """A name right after a word that introduces one; titles stay outside the span."""

    def __init__(self) -> None:
        super().__init__("PERSON", "cue_names")

    def analyze(self, text: str, entities, nlp_artifacts=None) -> list[RecognizerResult]:
        # Above spaCy's 0.85, so Presidio keeps these beside a longer, wrong NER span around them.
        return [RecognizerResult("PERSON", start, end, 0.9) for start, end in self.spans(text)]

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [(a, b) for a, b, strong in self._candidates(text)
                if strong or (_known_first(text[a:b]) and (not text[a].islower() or _INTRODUCED.match(text, b)))]

    def _candidates(self, text: str) -> list[tuple[int, int, bool]]:
        """(start, end, strong): a strong cue ("Name:", "my name is") is enough on its own; after a
        weaker one ("add", "note:", a sign-off) the name must start with a first name we know, so
        help-article text ("Download it again", "Delivered Duty Paid") is left alone."""
        found = []
        for m in _CUE.finditer(text):
            at = m.end()
            title = re.match(TITLES, text[at:])
            at += title.end() if title else 0
            end = name_at(text, at)
            if end and text[at:end].lower() not in places() and not place_not_person(text, at, end):
                strong = bool(_STRONG.search(m.group(0)))
                found.append((at, extend_name(text, end, surname_first=strong), strong))
        for m in _LOWER_TITLE.finditer(text):
            end = _titled_name_end(text, m.end())
            if end:
                found.append((m.end(), end, True))
        for m in _HERE.finditer(text):
            # "TUNDE ADEYEMI HERE", "Marcus Webb here": two capitalised words introducing themselves.
            end = name_at(text, m.end("at"), lower_ok=False)
            if end and _INTRODUCED.match(text, end) and len(text[m.end("at"):end].split()) >= 2:
                found.append((m.end("at"), end, True))
        for m in _SENT_FROM.finditer(text):
            end = name_at(text, m.end("at"), lower_ok=False)
            if end and not text[end:text.find("\n", end)].strip(" ,."):
                found.append((m.end("at"), end, True))
        found += [(a, b, True) for a, b in _row_names(text)]
        for m in _SURNAME_FIRST.finditer(text):
            # "OWEN, Megan / refund pending": a surname in capitals, then a first name we know.
            last, first = m.group("last").lower(), m.group("first").lower()
            if first in first_names() and last not in NOT_NAMES and last not in STOP_WORDS:
                end = m.end("first")
                more = _NEXT_WORD.match(text, end)
                if more and more.group(1).lower() in first_names() and more.group(1).lower() not in NOT_NAMES:
                    end = more.end()  # "MANUEL, José Mari"
                found.append((m.start("last"), end, True))
        weak = self._weak(text)
        return found + [(a, extend_name(text, b), False) for a, b in weak]

    def _weak(self, text: str) -> list[tuple[int, int]]:
        found = []
        starts = [m.end("at") for p in (_HERE, _LINE_HEAD) for m in p.finditer(text)]
        # "(Zoe Villanueva)": only a whole two-word-or-longer name fills the brackets.
        for m in _IN_PARENS.finditer(text):
            end = name_at(text, m.end("at"), lower_ok=False)
            if end and text[end:end + 1] == ")" and len(text[m.end("at"):end].split()) >= 2 \
                    and text[m.end("at"):end].split()[-1].lower() in last_names():
                found.append((m.end("at"), end))
        for at in starts:
            end = name_at(text, at)
            if end and text[at:end].lower() not in places() and not place_not_person(text, at, end):
                found.append((at, end))
        for m in _END_SIGNOFF.finditer(text):
            at = m.end("at")
            end = name_at(text, at, lower_ok=False)
            if end and not text[end:].strip(" .!\n") and len(text[at:end].split()) >= 2:
                found.append((at, end))
        for m in _BEFORE_EMAIL.finditer(text):
            at = m.start("name")
            end = name_at(text, at, lower_ok=False)
            if end and end >= m.end("name") - 1:
                found.append((at, end))
        return found


# --- street addresses ----------------------------------------------------------------------------
_STREET_TYPES = (r"Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Court|Ct|Way|Boulevard|Blvd|Place|Pl|Close|"
                 r"Crescent|Cres|Terrace|Tce|Parade|Pde|Grove|Gardens|Gdns|Square|Sq|Hill|Row|Mews|Walk|"
                 r"Highway|Hwy|Parkway|Pkwy|Circle|Cir|Trail|Green|Rise|View|Park")
_UNIT = r"(?:(?:Flat|Apt\.?|Apartment|Unit|Suite|Ste\.?)\s*\d+[A-Za-z]?,?\s+)?"
_WORD = r"[A-ZÀ-Þ][^\W\d_]+(?:['’\-][^\W\d_]+)*\b"
_CITY = rf"(?:,?\s+{_WORD}(?:\s+{_WORD}){{0,2}})?"
_UNIT_AFTER = r"(?:,?\s+(?:Unit|Apt\.?|Apartment|Suite|Ste\.?|Flat|#)\s*\d+[A-Za-z]?)?"
_REGION = r"(?:,?\s+[A-Z]{2,3}\b)?"
_POSTCODE = (r"(?:,?\s+(?:[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}|[A-Z]\d[A-Z]\s?\d[A-Z]\d|\d{5}(?:-\d{4})?|\d{4}"
             r"(?:\s?[A-Z]{2})?)\b)?")
ADDRESS_PATTERNS = [
    Pattern("number_first", _UNIT + r"\b\d{1,5}[A-Za-z]?\s+(?:[A-Z0-9][\w'’\-]*\s+){1,3}(?:" + _STREET_TYPES +
            r")\b\.?" + _UNIT_AFTER + _CITY + _REGION + _POSTCODE, 0.7),
    # A street, its number, a postcode and a town: "Am Markt 44, 80220 München", "Prinsengracht 96, 5413 PH Utrecht".
    Pattern("street_number_postcode", r"\b(?:(?:Am|An der|Auf dem|Im|In der|Zum|Zur|Op de|Aan de)\s+)?" + _WORD +
            r"(?:\s" + _WORD + r")?\s+\d{1,4}(?:\s?[a-z])?,\s+\d{4,5}(?:\s?[A-Z]{2})?\s+" + _WORD, 0.7),
    Pattern("street_first", r"\b[A-ZÄÖÜ][\wäöüß\-]*(?:straße|strasse|str\.|weg|allee|gasse|platz|ring|damm|"
            r"gracht|laan|plein|kade|dijk|singel|straat|steeg)\s+\d{1,4}[a-z]?,?\s+\d{4,5}\s?(?:[A-Z]{2}\s+)?"
            r"[A-ZÄÖÜ][\wäöüß\-]+", 0.7),
    Pattern("french", r"\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av\.|boulevard|bd|allée|chemin|place|"
            r"impasse|quai|route|cours)\s+(?:[\w'’\-]+\s+){0,4}?[\w'’\-]+,?\s+\d{5}\s+[A-Z][\w'’\-]+", 0.7),
]


# After a word that introduces an address, the address itself: up to the end of the clause (a line
# of a multi-line address each), at most six lines; an answer's citation marker ("[1]") ends a
# clause too. "e-mail address" and "IP address" are not these.
_ADDRESS_CUE = re.compile(
    r"(?i)(?<!e-mail )(?<!email )(?<!ip )(?<!web )(?<!mac )\b(?:(?:home|billing|shipping|delivery|postal|mailing|new|"
    r"old|current|my|our|the|registered|forwarding)\s+)?(?:address|addr|po\s+box)\b(?:\s+(?:is|was|to|of))?"
    r"\s*(?:[:=\-–]|is|to)?\s*(?:\n\s*)?|\b(?:i|we)\s+(?:now\s+)?(?:live|lived|am|are|moved)\s+(?:at|to)\s+|"
    r"\b(?:deliver(?:ed)?|send|ship|post|mail|forward)\s+(?:it\s+|them\s+|the\s+\w+\s+)?to\s+(?=\d|PO\b|P\.?O\.?\b|"
    r"(?:Flat|Apt|Unit|House|Plot|Lot|Bât|Blk|Block|Bldg|Av\.|Avenida|Calle)(?!\w))")
_CLAUSE_END = re.compile(r"\n\s*\n|;|\s?\[\d+\]|\s\|\s|\s->|\s-\s(?!\d)|[.!?](?=\s+[A-Za-z]|\s*$)|\s\(|,\s+(?:but|and|not|please|"
                         r"thanks|the house|it's|its|is that)\b|\s+(?:but|not|please|pls|thanks|instead|"
                         r"last|next|since|from now)\b")
_HOMETOWN = re.compile(r"(?i)\b(?:i\s+live\s+in|i'm\s+(?:based|currently)\s+in|im\s+(?:based\s+)?in|based\s+in|"
                       r"(?:currently|living|staying|located|out|now)\s+in|just\s+outside|near|moved\s+to|"
                       r"i'm\s+in|i\s+am\s+in|from|resident\s+of|moving\s+to|grew\s+up\s+in|home\s+is(?:\s+in)?|relocated\s+to|"
                       r"home\s*town\s*(?:is|[:\-–])|"
                       r"(?:we're|we\s+are)\s+(?:based\s+)?in|family\s+of\s+\w+\s+in)\s+(?=[A-Z])")
# Where a customer says they live, a town in lower case is still a town ("i live in ashby-de-la-zouch").
_LIVE_IN = re.compile(r"(?i)\b(?:i\s+live\s+in|i'm\s+based\s+in|im\s+based\s+in|grew\s+up\s+in|"
                      r"resident\s+of|(?:i'm|im|i\s+am|we're|we\s+are)\s+out\s+in|relocated\s+to)\s+(?=[a-z])")
_PLACE = re.compile(r"[A-Z][^\W\d_]+(?:-[^\W\d_]+){0,4}(?:[ -](?:d['’])?[A-Z][^\W\d_]+){0,2}(?:,\s+[A-Z]{2}\b)?")
_LOWER_PLACE = re.compile(r"[a-z][^\W\d_]+(?:-[^\W\d_]+){0,4}")
_NOT_PLACES = STOP_WORDS | NOT_NAMES  # "i'm out in the garden", "moved to tuesday"


def _not_a_place(text: str, value: str, end: int) -> bool:
    """"from Thursday", "from May 16", "from ORD-2024-65001": a day, a month, an identifier."""
    words = [w.strip(".,").lower() for w in value.split()]
    return all(w in NOT_NAMES for w in words) or bool(re.match(r"-\d", text[end:end + 2])) or value.isupper()


class CuedAddressRecognizer(_RuleRecognizer):
    """An address after the words that introduce one ("Home address:", "I live at", "deliver it
    to 5 ..."), and a home town after "I live in", "based in", "just outside"."""

    def __init__(self) -> None:
        super().__init__("LOCATION", "cued_addresses")

    def analyze(self, text: str, entities, nlp_artifacts=None) -> list[RecognizerResult]:
        out = []
        for m in _ADDRESS_CUE.finditer(text):
            start = m.end()
            if start >= len(text) or not (text[start].isalnum()):
                continue
            end_match = _CLAUSE_END.search(text, start)
            end = end_match.start() if end_match else len(text)
            lines = text[start:end].split("\n")
            end = start + len("\n".join(lines[:6]))
            value = text[start:end].rstrip(" ,.")
            # An address has a number, or at least two parts; "is wrong" is not one.
            if value and (any(ch.isdigit() for ch in value) or "," in value or "\n" in value) \
                    and "@" not in value and len(value) <= 160:
                out.append(RecognizerResult("LOCATION", start, start + len(value), 0.65))
        for m in _HOMETOWN.finditer(text):
            place = _PLACE.match(text, m.end())
            if place and not _not_a_place(text, place.group(0), place.end()):
                out.append(RecognizerResult("LOCATION", m.end(), place.end(), 0.6))
        for m in _LIVE_IN.finditer(text):
            place = _LOWER_PLACE.match(text, m.end())
            if place and place.group(0).split("-")[0] not in _NOT_PLACES:
                out.append(RecognizerResult("LOCATION", m.end(), place.end(), 0.6))
        # Above spaCy's 0.85: its own LOCATION there would be dropped as no place of residence.
        out += [RecognizerResult("LOCATION", a, b, 0.9) for a, b in _row_places(text)]
        return out


# A customer record's fields after its e-mail: "Hollister, Rusty",rhollister@...,Lexington.
_ROW_AFTER_EMAIL = re.compile(r"(?m)[,;\t|][ \t]*\"?[^\s,;\t|\"@]+@[^\s,;\t|\"]+\"?[ \t]*[,;\t|](?P<rest>[^\n@]+)$")
_TOWN_FIELD = re.compile(r"(?m)[ \t]*(?P<town>[A-ZÀ-Þ][^\W\d_]+(?:['’\-][^\W\d_]+)*(?:[ \t]+[A-ZÀ-Þ][^\W\d_]+){0,2})"
                         r"[ \t]*(?:[,;\t|]|$)")


def _row_places(text: str) -> list[tuple[int, int]]:
    """The fields after the e-mail of a delimited row that has one, which are one to three
    capitalised words: the customer's town (and state)."""
    found = []
    for row in _ROW_AFTER_EMAIL.finditer(text):
        pos = row.start("rest")
        while pos < row.end("rest"):
            field = _TOWN_FIELD.match(text, pos)
            if field and not all(w.lower() in _NOT_PLACES for w in field.group("town").split()):
                found.append((field.start("town"), field.end("town")))
            nxt = _DELIMITER.search(text, pos, row.end("rest"))
            pos = nxt.end() if nxt else row.end("rest")
    return found


_US_STATES = ("al|ak|az|ar|ca|co|ct|de|dc|fl|ga|hi|id|il|in|ia|ks|ky|la|me|md|ma|mi|mn|ms|mo|mt|ne|nv|nh|nj|nm|"
              "ny|nc|nd|oh|ok|or|pa|ri|sc|sd|tn|tx|ut|vt|va|wa|wv|wi|wy")
_US_STATE_NAMES = ("Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|Hawaii|"
                   "Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan|"
                   "Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|New Mexico|"
                   "New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode Island|"
                   "South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|West Virginia|"
                   "Wisconsin|Wyoming|District of Columbia")
# Postcodes, each in its country's shape, and PO boxes: where an address ends (or is), so the
# lines before it are the rest of it.
_POSTCODES = re.compile("|".join([
    r"\b[A-Z]{2},?\s+\d{5}(?:-\d{4})?\b",                       # US: state and ZIP
    rf"\b(?:{_US_STATE_NAMES}),?\s+\d{{5}}(?:-\d{{4}})?\b",         # ... the state's name spelled out
    r"\bCity\s+\d{4}\b",                                           # the Philippines: "Makati City 1239"
    r"(?i:\b[A-Z]\d[A-Z]\s?\d[A-Z]\d\b)",                         # Canada
    r"(?i:\b[A-Z]{1,2}\d[A-Z\d]?\s+\d[A-Z]{2}\b)",                  # UK
    r"(?i:\b[AC-FHKNPRTV-Y]\d{2}\s?(?=[A-Z\d]{0,3}[A-Z])[A-Z\d]{4}\b)",    # Ireland (Eircode)
    r"(?i:\b(?:NSW|VIC|QLD|TAS)\s+\d{4}\b)|\b(?:WA|SA|ACT|NT)\s+\d{4}\b",  # Australia
    r"(?<![\w-])(?:[A-Z]-)?\d{5}\s+[A-ZÀ-Þ][^\W\d_]+(?:\s+(?:am|an\s+der|upon|on|sur|en|im|bei)\s+[A-ZÀ-Þ][^\W\d_]+)?"
    r"(?:\s+\([A-Z]{2}\)|\s+[A-Z]{2}\b)?",                            # 5 digits and the town (Italy: "MI")
    rf"(?:(?<=[a-z]\s)|(?<=[a-z],\s))(?:{_US_STATES})\s+\d{{5}}(?:-\d{{4}})?\b",  # US, in lower case
    r"(?:(?<=\d\s)|(?<=\d[a-z]\s)|(?<=\s[a-z]\s))\d{5}\s+[a-zà-ÿ][a-zà-ÿ\-]+",  # "91a 50824 köln"
    r"(?<=,\s)\d{5}\s+[a-zà-ÿ]+\b",                                   # ... in lower case, after a comma
    r"(?<![\w-])\d{4}\s?[A-Z]{2}\s+[A-ZÀ-Þ][^\W\d_]+",                # Netherlands
    r"(?<=,\s)\d{4}\s?(?!(?:am|an|as|at|by|in|is|it|me|no|of|on|or|pm|so|to|up|us|we)\b)[a-z]{2}\s+[a-zà-ÿ]{3,}",  # ... in lower case
    r"\s[-–]\s?\d{6}\b|(?:(?<=,\s)|(?<=\n))[A-Z][a-z]+(?:\s[A-Z][a-z]+)?\s\d{6}\b",  # India: "Noida - 201070"
    r"(?<=,\s)\d{3}\s\d{2}\s+[A-ZÀ-Þa-zà-ÿ][^\W\d_]+",                    # Czechia, Slovakia, Sweden: "602 00 Brno"
    r"(?<![\w-])\d{2}-\d{3}\s+[A-ZÀ-Þ][^\W\d_]+",                        # Poland: "80-001 Gdańsk"
    r"(?<=,\s)(?!19\d\d|20\d\d)\d{4}\s+[A-ZÀ-Þa-zà-ÿ][^\W\d_]+",         # Austria, Belgium, Denmark, Norway
    r"\b\d{5}-\d{3}\b",                                                # Brazil: "80010-000"
    r"\bP\.?\s?O\.?\s+Box\s+\d+",                                   # PO boxes
]))
# Words an address line has beside names and numbers.
_ADDRESS_WORDS = frozenset("""apt apt. apartment flat unit suite ste ste. house no no. near po p.o. box
bât bât. appt appt. app app. int int. bis ter scala bajo og wohnung links rechts lot plot sector cross main
stn co co. c/ calle via piazza rue place quai chemin avenue av. bd boulevard lieu-dit de del della di da
des du la le les y na the of am an der im op und dei degli delle van von st st. upon sur sous en bei""".split())
_SEGMENT = re.compile(r",\s*|\n")


def _address_like(segment: str, lower: bool = False) -> bool:
    """A line or comma-separated part of an address: names, numbers and address words, no prose.
    `lower`: the address is written in lower case, so a word may be too, but not an ordinary one
    ("to", "is"), and a part of more than four words starts with its number."""
    words = segment.split()
    if not words or len(segment) > 48:
        return False
    if lower:
        return (words[0][0].isdigit() or len(words) <= 4) and all(
            w.lower() in _ADDRESS_WORDS or w.strip(".,").lower() not in STOP_WORDS or len(w) == 1 for w in words)
    # A single letter is a house number's ("58 a").
    return all(w[0].isupper() or w[0].isdigit() or w.lower() in _ADDRESS_WORDS or w in "-–/" or
               (len(w) == 1 and w.isalpha()) or re.match(r"#\d", w) for w in words)


def _country_after(text: str, end: int) -> int:
    """Where an address that ends at `end` really ends: a country after it is part of it."""
    m = re.match(r"(?:,\s*|[ \t]*\n[ \t]*|[ \t]+)([^\W\d_]+(?:[ \t][^\W\d_]+){0,2})\b", text[end:])
    if not m:
        return end
    words = m.group(1).split()
    for n in range(len(words), 0, -1):  # the longest run of words that names a country
        if " ".join(words[:n]).lower() in countries():
            return end + m.start(1) + len(" ".join(words[:n]))
    return end


_TOWN_GOES_ON = re.compile(r"[ \t]+(?:de|del|de la|do|da|dos)[ \t]+[A-ZÀ-Þ][^\W\d_]+")
_STATE_AFTER = re.compile(r",[ \t]*([A-ZÀ-Þ][^\W\d_]+(?:[ \t][A-ZÀ-Þ][^\W\d_]+)?)(?=[\s.,;!?]|$)")


def _rest_of_town(text: str, end: int) -> int:
    """Where a town after a postcode ends: its name goes on ("03446 Ciudad [de México]"), and a
    state or province may follow it ("72622 Puebla[, Puebla]", "[, CDMX]")."""
    more = _TOWN_GOES_ON.match(text, end)
    if more:
        end = more.end()
    state = _STATE_AFTER.match(text, end)
    if state and not any(w.lower() in NOT_NAMES or w.lower() in STOP_WORDS for w in state.group(1).split()):
        end = state.end()
    return end


@lru_cache(maxsize=1)
def countries() -> frozenset[str]:
    """Country names as an address ends with them, lower-cased."""
    from faker.providers.address.en_US import Provider

    names = {*Provider.countries, "UK", "USA", "US", "U.S.A", "United States", "United Kingdom", "Deutschland",
             "Nederland", "España", "Italia", "Österreich", "Schweiz", "Suisse", "Éire", "Belgique", "België",
             "England", "Scotland", "Wales", "Northern Ireland", "Ireland", "Canada", "Australia", "India"}
    return frozenset(n.lower() for n in names)


class PostcodeAddressRecognizer(_RuleRecognizer):
    """A postcode or PO box, and the address lines before it: each comma-separated part or line
    going back is part of the address while it reads like one (names, numbers, address words),
    up to six; of the first that does not, only its address-like end ("...re delivery to
    House No. 760")."""

    def __init__(self) -> None:
        super().__init__("LOCATION", "postcode_addresses")

    def analyze(self, text: str, entities, nlp_artifacts=None) -> list[RecognizerResult]:
        out = []
        for m in _POSTCODES.finditer(text):
            start = m.start() + len(m.group(0)) - len(m.group(0).lstrip(" -–"))
            start = self._back(text, start, lower=not any(ch.isupper() for ch in m.group(0)))
            out.append(RecognizerResult("LOCATION", start, _rest_of_town(text, _country_after(text, m.end())), 0.7))
        return out

    @staticmethod
    def _back(text: str, start: int, lower: bool = False) -> int:
        """Where the address that ends at `start` begins, going back part by part."""
        begin, end = start, start
        separators = list(_SEGMENT.finditer(text, 0, start))
        for taken, i in enumerate(range(len(separators) - 1, -2, -1)):
            seg_begin = separators[i].end() if i >= 0 else 0
            segment = text[seg_begin:end]
            if not segment.strip():
                if end != start:
                    break  # an empty part, a blank line: the address ended there
            elif _address_like(segment, lower):
                begin = seg_begin + len(segment) - len(segment.lstrip())
            else:
                words = segment.rstrip().split(" ")
                tails = (" ".join(words[k:]) for k in range(len(words)))
                tail = next((t for t in tails if _address_like(t, lower)), "")
                if tail:
                    begin = text.rindex(tail, seg_begin, end)
                break
            if i < 0 or taken >= 6:
                break
            end = separators[i].start()
        return begin


def address_recognizer() -> PatternRecognizer:
    return PatternRecognizer(supported_entity="LOCATION", name="street_addresses", patterns=ADDRESS_PATTERNS,
                             global_regex_flags=re.DOTALL | re.MULTILINE)


# --- what is not personal data by default ---------------------------------------------------------
RESIDENCE = re.compile(r"(?i)\bhome\s*town\s*[:\-–]\s*$|"
                       r"\b(?:live|lives|living|reside|resides|moved|moving|relocated|relocating|based|located|"
                       r"from|i'm in|out in|currently in|staying|just outside|i am in|we're in|we are in|hometown|home\s+town|im in|address|(?-i:home|house|Home(?=\s+is\b))|flat|apartment|postcode|zip|resident|grew up|"
                       r"family of \w+ in|now in)\b[\w\s,']{0,20}$")
# ... but not "can I order from Iceland" or "shipping from your warehouse in Lisbon": goods come from there.
GOODS_FROM = re.compile(r"(?i)\b(?:order|ordered|ordering|ship|ships|shipped|shipping|buy|buying|bought|import|"
                        r"imported|deliver|delivered|delivery|send|sent|dispatch|dispatched|made|warehouse|store|"
                        r"shop)\b[\w\s,']{0,20}\bfrom\b[\w\s,']{0,20}$")
DETERMINER = re.compile(r"(?i)\b(?:the|a|an|this|that|our|your|these|those|my|its)\s+$")


_NEXT_WORD = re.compile(r"[ \t]+([A-ZÀ-Þ][^\W\d_]+(?:['’\-][^\W\d_]+)*)")


# Words that start a sentence before a name, which the NER sometimes takes into it ("[Call Maria] ...").
_LEADING_VERBS = frozenset("call ask email e-mail contact ring text message tell thank ping please cc "
                           "phone mail write see meet".split())


def trim_name(text: str, start: int, end: int) -> tuple[int, int]:
    """A NER name without the ordinary words at its edges: "Call Maria Gonzalez" is "Maria
    Gonzalez", "Dear Customer Service Team" is nothing."""
    words = list(re.finditer(r"\S+", text[start:end]))
    while len(words) > 1 and _ordinary(words[0].group(0)):
        words.pop(0)
    while len(words) > 1 and _ordinary(words[-1].group(0)):
        words.pop()
    # "spelt [Giulia O'Donoghue]"; a lower-case word after a name stays, and shows it is none
    # ("Havana rug").
    while len(words) > 1 and any(w.group(0)[:1].isupper() for w in words[1:]) and (
            _plain_lower(words[0].group(0)) or not any(ch.isalpha() for ch in words[0].group(0))):
        words.pop(0)
    return start + words[0].start(), start + words[-1].end()


def _plain_lower(word: str) -> bool:
    """A lower-case word that is no name we know and no particle."""
    plain = word.strip(".,:;!?'’\"()")
    return bool(plain) and plain.islower() and plain not in PARTICLES and plain not in first_names() \
        and plain not in last_names()


def _ordinary(word: str) -> bool:
    plain = word.strip(".,:;!?'’\"()").lower()
    return plain in NOT_NAMES or plain in STOP_WORDS or plain in _LEADING_VERBS


def _row_names(text: str) -> list[tuple[int, int]]:
    """In a delimited row with an e-mail field, the fields before it that read as a name: one to
    four words with letters only, not an ordinary word, a place or a country."""
    found = []
    for row in _ROW_WITH_EMAIL.finditer(text):
        for field in _FIELD.finditer(text, row.start("fields"), row.end("fields")):
            value = field.group(0).strip().strip('"').strip()
            if not value:
                continue
            words = value.replace(",", " ").split()
            if len(words) > 4 or any(not _NAME_WORD.fullmatch(w) for w in words):
                continue
            if value.lower() in places() or value.lower() in countries() or all(
                    w.lower() in NOT_NAMES or w.lower() in STOP_WORDS for w in words):
                continue
            start = text.index(value, field.start())
            found.append((start, start + len(value)))
    return found


def extend_name(text: str, end: int, surname_first: bool = False) -> int:
    """Where a name really ends: the NER (or a cue's rule) sometimes stops after the first name
    ("[Jane] Doe wrote"), and a surname we know, capitalised, right after it is part of it; so is
    the rest of a hyphenated surname ("oliveira[-sales]"), the word after a trailing particle
    ("leonardo de la [fuente]"), and, after a surname written first, its first name
    ("SMITH-BRYANT[, Stacey]", "Kramer[, Vittorio]")."""
    hyphen = re.match(r"-[^\W\d_]{2,}", text[end:])
    if hyphen:
        end += hyphen.end()
    last = re.search(r"(\S+)$", text[:end])
    if last and last.group(1).lower() in PARTICLES:
        m = _ANY_WORD.match(text, end)
        if m and m.group(1).lower() == "an" and last.group(1).lower() in ("mac", "nic"):
            m = _ANY_WORD.match(text, m.end())  # "Sarah Mac an [Aba]": the article goes with the particle
        if m and m.group(1).lower() not in STOP_WORDS:
            end = m.end()
    for _ in range(2):
        m = _NEXT_WORD.match(text, end)
        word = m.group(1).lower() if m else ""
        if not m or word in NOT_NAMES or word in STOP_WORDS or word not in last_names():
            break
        end = m.end()
    first = _FIRST_AFTER_COMMA.match(text, end)
    if first and last and not last.group(1)[0].islower():
        given = first.group(1).lower()
        # A first name we know, or, after a surname we know (or a cue such as "Regards,"), any
        # capitalised word that is no ordinary word or place: "Mendoza, Rodel", "Obi, Chiamaka".
        plain = given not in NOT_NAMES and given not in STOP_WORDS and given not in places()
        if given in first_names() or (plain and (surname_first or last.group(1).lower().strip(",") in last_names())):
            end = first.end()
    return end


def extend_name_start(text: str, start: int) -> int:
    """Where a name really starts: initials right before it are part of it ("[A.] Ó Hearáin"), and
    so is a first name we know right before it ("[Ana] Laura Martins"); one that is also a word
    ("Ping", "Jun") only before a surname we know that is no first name ("[Ping] Tian called")."""
    m = re.search(r"(?:(?<=\s)|^)(?:[A-Z]\.\s?){1,3}$", text[:start])
    if m:
        return m.start()
    before = re.search(r"(?:(?<=\s)|^)([A-ZÀ-Þ][^\W\d_]+)[ \t]+$", text[:start])
    if not before:
        return start
    word = before.group(1).lower()
    if word not in first_names() or word in STOP_WORDS:
        return start
    if word not in NOT_NAMES and word not in _LEADING_VERBS:
        return before.start(1)
    following = text[start:].split(maxsplit=1)[0].strip(".,;:!?").lower() if text[start:].strip() else ""
    return before.start(1) if following in last_names() and following not in first_names() else start


_ANY_WORD = re.compile(r"[ \t]+([^\W\d_]+(?:['’\-][^\W\d_]+)*)")
_FIRST_AFTER_COMMA = re.compile(r",[ \t]*([A-ZÀ-Þ][^\W\d_]+(?:-[^\W\d_]+)?)\b(?![ \t]*[A-Z][a-z])")


HOLIDAYS = frozenset("""easter christmas xmas thanksgiving halloween hanukkah chanukah diwali eid passover
ramadan lent advent valentine valentine's pentecost whitsun kwanzaa juneteenth hogmanay purim holi navratri
vesak lohri pongal songkran nowruz""".split())
_HOLIDAY_PHRASE = re.compile(r"(?i)(?:(?:lunar|chinese)\s+)?new\s+year|cinco\s+de\s+mayo|mardi\s+gras|"
                             r"rosh\s+hashanah|yom\s+kippur|d[ií]a\s+de\s+(?:los\s+)?muertos|day\s+of\s+the\s+dead")
_DAY_AFTER = re.compile(r"(?:['’]s)?[ \t]+(?:Day|Eve|Sunday|Monday|weekend)\b")
_STREET_WORDS = frozenset(w.lower() for w in _STREET_TYPES.split("|")) | {"circus", "quay", "wharf", "market"}
# An imperative's verb at the start of a sentence, which the NER takes for a name: "Bill me later", "Pat the
# cushions flat". A name there is rarely followed by an object pronoun or a determiner.
_OBJECT_AFTER = re.compile(r"[ \t]+(?:me|us|them|it|him|her|the|my|our|your|this|that|these|those)\b", re.I)


def keep_entity(text: str, kind: str, start: int, end: int, recognizer: str,
                allowed_words: frozenset[str] = frozenset()) -> bool:
    """False for what looks like PII to spaCy's NER (or a cue) but is not by default."""
    value = text[start:end]
    if kind in ("PERSON", "LOCATION") and value.split()[0].lower() in allowed_words:
        return False  # the company's own names and address: "Larkspur Home", "Larkspur Goods Customer Care, ..."
    if kind == "PHONE_NUMBER" and (_DATE_LIKE.match(value.strip()) or
                                   (re.fullmatch(r"\d+(?:[ .\-]\d+)*", value) and _ID_BEFORE.search(text[max(0, start - 30):start]))):
        return False  # "delivered on 08.09.2026", "Tracking number 169815008239", "P/N 195 171 0894"
    if kind == "US_SSN" and _ID_BEFORE.search(text[max(0, start - 30):start]):
        return False  # "SKU 743-82-3686"
    if kind == "PHONE_NUMBER" and _long_digit_run(text, start, end):
        return False  # a piece of a tracking number: "9270 2278 [0899 7065 9900 65]"
    if kind == "PHONE_NUMBER" and re.search(r"[A-Za-z]{1,4}-$", text[max(0, start - 5):start]):
        return False  # the rest of an identifier: "LW-3002-0219"
    if kind == "IP_ADDRESS" and _VERSION_BEFORE.search(text[max(0, start - 25):start]):
        return False  # "app build 5.12.16.45", "firmware v2.4.1.9": a version, not an address
    if recognizer != "SpacyRecognizer":
        return True
    words = [w.strip(".,'’").lower() for w in value.split()]
    if (words[-1] in HOLIDAYS or (len(words) > 1 and words[-1] == "day") or _DAY_AFTER.match(text, end)
            or _HOLIDAY_PHRASE.fullmatch(value.strip())):
        return False  # "St Patrick's Day", "Easter Sunday", "Victoria Day"
    if words in (["day"], ["eve"]) and re.search(r"['’]s[ \t]+$", text[:start]):
        return False  # the model's span can be the "Day" of "St Patrick's Day" alone
    if re.match(r"-\d", text[end:end + 2]):
        return False  # the prefix of an identifier: "ORD-2024-65001"
    if kind == "PERSON":
        previous = re.search(r"([^\W\d_]+)[ \t]+$", text[:start])
        if previous and previous.group(1).lower() in allowed_words:
            return False  # the rest of a company's or a brand's name: "Larkspur Home", "Weber Traveler"
        if start and text[start - 1].isdigit():
            return False  # the end of an identifier: "DL852716838GB"
        if len(words) == 1 and value.isupper() and words[0] not in first_names() and words[0] not in last_names():
            return False  # a code or an abbreviation in capitals: "FREESHIP", "DDP"
        if len(words) > 1 and words[-1] in _STREET_WORDS:
            return False  # a street the shop is on: "Michigan Avenue", "george street"
        if len(words) == 1 and _OBJECT_AFTER.match(text, end) and re.search(r"(?:^|[.!?]\s+)$", text[:start]):
            return False  # "Bill me later please."
        if any(ch.isdigit() for ch in value):
            return False  # SKUs and order numbers
        if len(words) == 1 and words[0] not in first_names() and _PLACE_BEFORE.search(text[max(0, start - 12):start]):
            return False  # "left it at Gatwick", "hiking Kilimanjaro": a place, not a person
        if DETERMINER.search(text[max(0, start - 12):start]) or _article_before_capitals(text, start):
            return False  # "the Carter TV stand", "the Queen [Victoria] bookends": a product called by a name
        if _PRODUCT_AFTER.match(text, end):
            return False  # "anything Moana themed", "a Martha Stewart style pan"
        if _lower_inside(value):
            return False  # "Havana rug": a name does not end in an ordinary noun
        words = [w.strip(".,'’").lower() for w in value.split()]
        if all(w in NOT_NAMES or w in STOP_WORDS for w in words):
            return False  # "Dear Customer Service", "The box said Made in Norway"
        if value.islower() and not (_known_first(value) or words[-1] in last_names()):
            return False  # lower-case chat: "invalid at checkout" is no one; "chase barnes" is someone
        return True
    if kind == "LOCATION":
        if all(w in NOT_NAMES for w in words):
            return False  # "away from Thursday", "from May 16"
        # A place on its own is personal only where the customer lives or is.
        before = text[max(0, start - 40):start]
        return bool(RESIDENCE.search(before)) and not GOODS_FROM.search(before)
    return True

_PLACE_BEFORE = re.compile(r"(?i)\b(?:at|near|via|around|across|outside|towards|hiking)[ \t]+$")
_PRODUCT_AFTER = re.compile(r"(?i)[ \t]*-?[ \t]*(?:themed|inspired|style|styled|branded|licen[sc]ed|edition|"
                            r"collection|range|print|pattern|motif|merch)\b")
_CAPITALS = re.compile(r"(?:[A-ZÀ-Þ][^\W\d_]*[ \t]+)+$")
_ARTICLE = re.compile(r"(?i)\b(?:the|a|an|this|that|these|those)\s+$")


def _article_before_capitals(text: str, start: int) -> bool:
    """An article before the capitalised words right before a span: "the Queen [Victoria]
    bookends" names a product. Not after a title or a relative ("the Rev. John Smith", "my Aunt
    Mary"): those introduce a person."""
    before = text[max(0, start - 60):start]
    m = _CAPITALS.search(before)
    if not m or any(w.strip(".").lower() in TITLE_WORDS for w in m.group(0).split()):
        return False
    return bool(_ARTICLE.search(before[:m.start()]))


def _lower_inside(value: str) -> bool:
    """A capitalised span that ends in a lower-case word that is no particle and no name we know:
    the NER ran a name into the noun after it ("Havana rug"); "Maria and John" is two people."""
    words = [w.strip(".,'’\"()") for w in value.split()]
    if len(words) < 2 or not any(w[:1].isupper() for w in words):
        return False
    return _plain_lower(words[-1])


_GEOGRAPHY = frozenset("""canyon peak lake river field islands island airport international bay valley
falls beach hills mountains mountain forest desert coast county hub stadium arena gardens national
mount mt fort cape""".split())
_COMPASS = frozenset("north south east west northern southern eastern western central upstate downtown".split())


_PLACE_PREPOSITION = re.compile(r"(?i)\b(?:in|at|via|near|across|around|into|through|outside|inside)[ \t]+$")


def place_not_person(text: str, start: int, end: int) -> bool:
    """A span the NER calls a person that names a place: a country, state or big city ("Morocco",
    "Nevada"), a landmark or a neighbourhood ("Soldier Field", "Mount Whitney", "Glenwood South",
    "South Texas"). A place that is also a first name ("Jordan", "Florence") only after a word
    that goes before places and not people ("in Jordan"): "cx Jordan asking", "to Florence" are people."""
    value = text[start:end].strip()
    words = [w.strip(".,'’").lower() for w in value.split()]
    if not words:
        return False
    if value.lower() in places() or value.lower() in countries():
        return (len(words) > 1 or words[0] not in first_names()
                or bool(_PLACE_PREPOSITION.search(text[max(0, start - 12):start])))
    if len(words) > 1 and words[0] in first_names() and words[-1] in last_names():
        return False  # "Sally Field", "John West": a first name and a surname
    if len(words) > 1 and (words[-1] in _GEOGRAPHY or words[0] in ("mount", "mt", "lake", "fort", "cape")):
        return True
    return len(words) > 1 and (words[-1] in _COMPASS or (words[0] in _COMPASS and " ".join(words[1:]) in places()))


_AND_BEFORE = re.compile(r"(?:^|(?<=[\s'\"(,]))([A-ZÀ-Þ][^\W\d_]+(?:-[^\W\d_]+)?)[ \t]+(?:and|&)[ \t]+$")
_AND_AFTER = re.compile(r"[ \t]+(?:and|&)[ \t]+([A-ZÀ-Þ][^\W\d_]+(?:-[^\W\d_]+)?)\b")


def coordinated_names(text: str, names: list[tuple[int, int]], allowed_words: frozenset[str] = frozenset()
                      ) -> list[tuple[int, int]]:
    """The other name of a pair: "Both [Gurpreet] and Amber", "Love, Maarten and [Oluwaseun]". A
    capitalised word joined by "and" to a name is a name too, unless it is an ordinary word, a
    place or one of the company's own names."""
    def plain(word: str) -> bool:
        w = word.lower()
        return not (w in NOT_NAMES or w in STOP_WORDS or w in places() or w in countries() or w in allowed_words
                    or w in HOLIDAYS)
    found = []
    for start, end in names:
        before = _AND_BEFORE.search(text[max(0, start - 40):start])
        if before and plain(before.group(1)):
            at = start - len(before.group(0))
            found.append((at, at + len(before.group(1))))
        after = _AND_AFTER.match(text, end)
        if after and plain(after.group(1)):
            found.append((after.start(1), after.end(1)))
    return found
