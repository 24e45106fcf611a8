"""Angry or distressed customers are flagged; an explicit request for a human hands off.

The head reads a message's embedding, which carries its topic as much as its
tone: a calm note about a broken sofa sits near angry ones about broken sofas.
So a flag can also need a second model's word (`confirm`): character and word
n-grams with the embedding (`guardrails.text_classifier`), one per label,
trained on the same messages, which reads the wording ("absolutely
ridiculous", "!!!", "I'm in tears"). Where the two must agree, the head's own
bar can be lower, and more of the real flags are kept.

A handoff leaves the agent with no answer, so the head's "human_request" is not
enough on its own: the message must also ask for a person in so many words
("can I speak to someone", "could a manager call me", "real person, not a bot").
A message that only mentions one ("our site manager will sign for it", "the
delivery person was lovely") is answered like any other.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field

from guardrails.heads import DATA, head_for, load_labelled
from guardrails.registry import CheckContext, Params, register
from guardrails.text_classifier import TextClassifier, classifier_for
from guardrails.verdict import Action, CheckResult

LABELS = ("neutral", "angry", "distressed", "human_request")
LABELLED = DATA / "sentiment.jsonl"
# Calm messages in charged words ("a formal complaint", "my manager asked me"), for the head
# alone: sentiment.jsonl also serves the injection models as everyday text, and a change
# there would mean retraining their LoRA model.
CALM = DATA / "sentiment_calm.jsonl"
# 480 more, by a writer who saw none of the other sets: angry, distressed and request messages in
# many registers (agents' third-person notes among them), and calm ones in charged words.
MORE = DATA / "sentiment_more.jsonl"
# 600 more by a fourth writer, who read only the sample articles: calm messages in emotional words
# (complaints made, withdrawn or settled; other people's feelings; mild words said in passing), and
# angry, distressed and request messages in new registers.
MORE_B = DATA / "sentiment_more_b.jsonl"
# 720 more by a fifth writer, who also read only the sample articles: calm messages that name
# managers, admins, supervisors, escalations, urgency and past anger without asking for anything of
# the kind, and angry, distressed and request messages.
MORE_C = DATA / "sentiment_more_c.jsonl"
# 600 more by a sixth writer, who read only the sample articles: hard circumstances stated calmly (a
# hospital stay, surgery, a lease, a bereavement), praise, people mentioned in passing, jokes and
# slang, mild annoyance, consent and account admin; and angry, distressed and request messages,
# some on the same topics, so that the difference is the state of mind and not the topic.
MORE_D = DATA / "sentiment_more_d.jsonl"
# 650 more by a seventh writer, in Spanish, French, German, Italian and Portuguese (130 each: calm,
# angry, distressed, requests), for customers who do not write in English.
MORE_E = DATA / "sentiment_more_e.jsonl"
SHIPPED = (LABELLED, CALM, MORE, MORE_B, MORE_C, MORE_D, MORE_E)  # what the shipped head (and the wording models) train on
FLAGGED = ("angry", "distressed")  # the labels that flag a turn, and that a wording model can confirm


def shipped_rows() -> list[dict]:
    return [row for path in SHIPPED for row in load_labelled(path, LABELS)]


def wording_cache(cache_dir: Path, label: str) -> Path:
    return cache_dir / f"sentiment-wording-{label}.json"


def wording_model(embedder, rows: list[dict], label: str, cache_dir: Path | None) -> TextClassifier:
    """The n-gram model for one label (that label against the rest), trained on the shipped `rows`."""
    return classifier_for(embedder, rows, label, wording_cache(cache_dir, label) if cache_dir else None)


_PERSON = (r"(humans?|person|people|agents?|representatives?|reps?|operators?|officers?|someone|somebody|anyone|"
           r"managers?|supervis[oe]rs?|advis[oe]rs?|boss|head of [\w ]{3,30}|staff( member)?|team ?lead(er)?s?|"
           r"team members?|member of (\w+ ){0,3}(staff|team)|colleagues?|specialists?|experts?|consultants?|"
           r"employees?|(whoever|someone|somebody)('s| is)? in charge)")
# Past forms that report a contact ("my partner already talked to someone", "called the agent useless")
# are no request; "transferred" doubles its r.
_ASK = (r"(?!(talk|call|reach)ed\b)"
        r"((speak|talk|(?<!\bthe )(?<!\byour )(?<!\blive )(?<!\bnice )(?<!\bhad a )chat|transferr?|connect|escalat|"
        r"get|giv|want|need|like|request|prefer|hav|bring|find|send|reach|ask|arrang|book|call|ring|phone|pass|hand)"
        r"(s|e|es|ed|ing)?|put (me )?(through|in touch)|in touch|deal with|is there|available|let)"
        r"(?! (if|whether)\b)")  # "customer asks if ..." reports, not requests
# A person named as part of something else: "a person other than the buyer", "a human check"; a role
# ("added as a team member") or a maker ("made by a real person").
_NOT_A_REQUEST = r"(?! (other than|checks?|error|named)\b)"
_NOT_A_ROLE = r"(?<!\bas a )(?<!\bas an )(?<!\bas )(?<!\bmade by )(?<!\bmade by a )(?<!\bwoven by )(?<!\bbuilt by )"
# Passed on to people, not to a form or a page: "to customer relations", "with someone in billing".
_TO_PEOPLE = (rf" (to|with) ([\w']+ ){{0,3}}?(team|department|desk|line|relations|care|service|support|billing|"
              rf"{_PERSON})\b")
# Spanish, French, German, Italian and Portuguese: a verb of asking, passing on, calling or talking
# near a word for a person, in either order, or a call-back in so many words.
_FOREIGN_ASK = (r"(hablar|parler|sprechen|reden|besprechen|falar|parlare|parlar|chattare|échanger|"
                r"pas[ae](me|n|r)?|pásame|passez-moi|passe-moi|passer|passami|passate|passare|"
                r"verbinden|verbinde|weiterleiten|connecter|mis en relation|mettre en relation|comunicar|collegare|"
                r"transferir|transférer|trasferire|atender|atienda|llam[ae]n?|llamar|m'appelle|appeler|"
                r"anrufen|chiamare|chiamata|chamar|ligasse|ligue|ligar|"
                r"hay|y a-t-il|gibt es|c'è|tem|dispo(nible|nibile|nível)?|prefier\w*|préfér\w*|prefer\w*|prefir\w*)")
_FOREIGN_PERSON = (r"(persona|humano|humana|agente|agent|representante|rappresentante|représentant|supervisor|superviseur|"
                   r"supervisore|personne|humain|umano|conseill[eè]re?|consulente|consultor|mensch(en)?|"
                   r"mitarbeiter\w*|person|pessoa|atendente|operat(ore|or|eur)|opérateur|quelqu'un|qualcuno|"
                   r"alguien|alguém|alguem|jemand(em|en)?|responsable|responsabile|responsável|gerente|encargado|"
                   r"vorgesetzte\w*|collega|colega|collègue|öpper(em)?)")
_FOREIGN = (rf"\b{_FOREIGN_ASK}\b[^.?!]{{0,40}}?\b{_FOREIGN_PERSON}(?!\w)"
            rf"|\b{_FOREIGN_PERSON}(?!\w)[^.?!]{{0,40}}?\b(sprechen|reden|rede|besprechen|verbinden|anrufen|"
            r"parlare|parler|hablar|falar|m'appelle|me llame|me ligasse|me ligue|me ligar|me retornar|"
            r"m'appeler)\b"
            r"|\b(zurückrufen|rufen sie mich\b[^.?!]{0,20}\bzurück|rappeler|rappelle[rz]?|faire rappeler|"
            r"richiamare|richiamarmi|essere richiamat[ao]|devolver la llamada|ligar de volta|retornar a liga\w+)\b")
_ASKS_FOR_PERSON = re.compile(
    rf"\b{_ASK}\b(?:(?! or )[^.?!]){{0,40}}?{_NOT_A_ROLE}\b{_PERSON}\b{_NOT_A_REQUEST}"  # "can I speak to someone"; not "... or can anyone"
    rf"|\b{_PERSON}\b[^.?!]{{0,30}}?\b(call|ring|phone|contact|email)s? (me|us)\b"  # "could a manager call me"
    rf"|\bcall from (a |an |the |your )?{_PERSON}"
    r"|\b(call|ring|phone) me back\b|\bgive (me|us) a (ring|call|bell)\b|\bcall ?backs?\b"
    rf"|{_NOT_A_ROLE}\b(real|live|actual|proper) (person|human|agent|people|one|support|chat)\b|\bhuman being\b"
    r"|\bwho (can|could|do|should) (i|we) (speak|talk) (to|with)\b"
    # Whoever it is: "transfer me", "put me through to customer relations", "can I be connected".
    rf"|\b(transferr?|connect)(s|ed|ing)? (me|us|her|him|them)(?=\W*$|[.!?,]| (please|now)\b|{_TO_PEOPLE})"
    rf"|\bput (me|us|her|him|them) through\b|\bbe (transferred|connected|put through|passed on)(?=\W*$|[.!?,]|{_TO_PEOPLE})"
    rf"|{_FOREIGN}"
    r"|\b(human|person|agent|operator)s?,? (please|pls|now)\b"
    r"|\bnot (a |an |the |with )?(bot|robot|machine|ai|assistant|computer|form)s?\b|\bis a human\b",
    re.IGNORECASE)
# Said of the person, not asked for: "no need for anyone to ring me", "doesn't want a call back".
_DECLINED = re.compile(r"\b(no need|(don'?t|do not|doesn'?t|does not|won'?t|will not) (need|want|have to)|"
                       r"no one needs|nobody needs|not necessary|never mind|without)\b[^.?!,;]{0,30}$", re.IGNORECASE)
_FEW_WORDS = re.compile(r"^\W*(\w+\W+){0,3}\w*\W*$")  # "Human please.", "Manager. Now."
_NAMES_A_PERSON = re.compile(rf"\b({_PERSON}|human|{_FOREIGN_PERSON})\b(?! error)", re.IGNORECASE)


def asks_for_person(text: str) -> bool:
    """Does the message ask, in words, to be put in touch with a person?"""
    if _FEW_WORDS.match(text) and _NAMES_A_PERSON.search(text):
        return True
    return any(not _DECLINED.search(text[:match.end()]) for match in _ASKS_FOR_PERSON.finditer(text))


class SentimentParams(Params):
    flag_labels: list[str] = Field(list(FLAGGED), description="Labels that queue the turn for review.")
    handoff_labels: list[str] = Field(["human_request"], description="Labels that hand the chat to a human.")
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)
    label_confidence: dict[str, float] = Field({}, description="Per label, a bar other than min_confidence.")
    confirm: dict[str, float] = Field(
        {}, description="Per flag label, the probability the wording model must also give the label before the "
        "turn is flagged (see the module); a label not named here is flagged on the head alone.")
    handoff_needs_request: bool = Field(
        True, description="Hand off only when the message also asks for a person in words (see the module).")
    handoff_min_probability: float = Field(
        0.1, ge=0.0, le=1.0, description="With such a request, the head's human_request probability that hands "
        "off even when another label scores higher.")


@register
class SentimentCheck:
    name: ClassVar[str] = "sentiment"
    stages: ClassVar[tuple[str, ...]] = ("input",)
    Params: ClassVar[type[SentimentParams]] = SentimentParams
    needs: ClassVar[tuple[str, ...]] = ("embedder", "cache_dir")

    def __init__(self, params: SentimentParams, embedder, cache_dir=None) -> None:
        named = params.flag_labels + params.handoff_labels + list(params.label_confidence) + list(params.confirm)
        unknown = sorted(set(named) - set(LABELS))
        if unknown:
            raise ValueError(f"unknown labels {unknown}; known: {', '.join(LABELS)}")
        if not set(params.confirm) <= set(params.flag_labels):
            raise ValueError(f"confirm: only flag labels are confirmed ({', '.join(params.flag_labels)})")
        self.params = params
        self.embedder = embedder
        self.head = head_for(embedder, SHIPPED, LABELS, cache_dir / "sentiment-head.json" if cache_dir else None)
        rows = shipped_rows() if params.confirm else []
        self.wording = {label: wording_model(embedder, rows, label, cache_dir) for label in params.confirm}

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        # The message as typed, like the labelled examples; and one embedding per turn is shared
        # with the other input checks. Only scores leave this function.
        vectors = np.asarray(self.embedder.embed([ctx.original or text]))
        [probs] = self.head.predict(vectors)
        label = max(probs, key=probs.get)
        scores = {f"p_{k}": v for k, v in probs.items()}
        typed = ctx.original or text
        if self.params.handoff_needs_request:
            if asks_for_person(typed):
                handoff = [k for k in self.params.handoff_labels if probs[k] >= self.params.handoff_min_probability]
                if handoff:
                    return CheckResult(self.name, Action.HANDOFF, (f"sentiment:{handoff[0]}",), scores)
            elif label in self.params.handoff_labels:
                return CheckResult(self.name, Action.ALLOW, (), scores)  # mentions a person; asks for none
        if probs[label] < self.params.label_confidence.get(label, self.params.min_confidence):
            return CheckResult(self.name, Action.ALLOW, (), scores)
        if label in self.params.handoff_labels:
            return CheckResult(self.name, Action.HANDOFF, (f"sentiment:{label}",), scores)
        if label in self.params.flag_labels:
            if label in self.wording:
                [wording] = self.wording[label].scores([typed], vectors)
                scores[f"wording_{label}"] = float(wording)
                if wording < self.params.confirm[label]:
                    return CheckResult(self.name, Action.ALLOW, (), scores)
            return CheckResult(self.name, Action.FLAG, (f"sentiment:{label}",), scores)
        return CheckResult(self.name, Action.ALLOW, (), scores)
