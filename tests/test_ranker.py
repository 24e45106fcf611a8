"""The extractive answerer's sentence features and learned ranker, on the real embedder and KB."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import ConfigError
from retrieval.ranker import DEFAULT_RANKER, FEATURES, SentenceRanker, TreeRanker, features, load_ranker, read_ranker
from retrieval.rerank import sentences
from retrieval.store import Hit


def _column(x: np.ndarray, name: str) -> np.ndarray:
    return x[:, FEATURES.index(name)]


def test_a_pdf_line_wrapped_mid_sentence_reads_as_one_sentence():
    text = ("Guide > Serial\n\nFind the serial number\n"
            "The serial number is printed on a silver label, usually on the underside of the base. On kettles it is under the base\n"
            "plate; on cordless vacuums it is inside the battery compartment.\n"
            "- the order number, or a photo of the receipt;\n- the model name and serial number")
    assert sentences(text) == [
        "Find the serial number",
        "The serial number is printed on a silver label, usually on the underside of the base.",
        "On kettles it is under the base plate; on cordless vacuums it is inside the battery compartment.",
        "the order number, or a photo of the receipt;",
        "the model name and serial number",
    ]


def test_features_mark_the_kind_of_answer_asked_for_and_headings(services):
    hits = [Hit("kinds", "a.md", "Braille > Formats\n\nFind your format\nBraille versions of safety instructions take "
                             "10 business days. Our team is friendly and helpful to everyone.", 0.5)]
    x, candidates = features("how long does braille take", hits, services.reranker, services.retriever.term_weights)
    assert [c.text for c in candidates][1].startswith("Braille versions") and x.shape == (3, len(FEATURES))
    assert _column(x, "answer_kind").tolist() == [0.0, 1.0, 0.0]  # "10 business days" answers "how long"
    assert _column(x, "heading").tolist() == [1.0, 0.0, 0.0]
    assert _column(x, "cosine_gap").max() == 0.0


def test_rare_words_weigh_more_than_the_companys_name(services):
    weights = services.retriever.term_weights(["larkspur", "braille"])
    assert weights["braille"] > 2 * weights["larkspur"]


def test_the_shipped_ranker_loads_and_says_what_it_was_trained_on():
    ranker = load_ranker("default")
    assert isinstance(ranker, TreeRanker) and len(ranker.trees) == 100
    assert ranker.meta["source"].startswith("answers_train.jsonl") and "answers_train_b.jsonl" in ranker.meta["source"]
    assert ranker.meta["positives"] > 100 and ranker.meta["sentence_model"] == "mpnet"
    assert load_ranker("none") is None


def test_the_sentence_scorer_feeds_the_cosine_feature(services):
    scorer = services.sentence_scorer
    assert scorer is not None and scorer.embedder.dim == 768  # all-mpnet-base-v2, not MiniLM's 384
    question = "how much do i save if i subscribe to coffee beans"
    hits = services.retriever.context_for(question)
    scored, _ = features(question, hits, services.reranker, services.retriever.term_weights, scorer)
    plain, _ = features(question, hits, services.reranker, services.retriever.term_weights)
    query = np.asarray(scorer.embedder.embed([question])[0])
    np.testing.assert_allclose(_column(scored, "cosine"), np.concatenate([scorer.sentence_vectors(h) @ query
                                                                          for h in hits]), atol=1e-5)
    kb_query = np.asarray(services.reranker.embedder.embed([question])[0])
    np.testing.assert_allclose(_column(plain, "cosine"), np.concatenate([services.reranker.sentence_vectors(h) @ kb_query
                                                                         for h in hits]), atol=1e-5)
    # Everything else in the row is the same whichever model scores.
    others = [i for i, name in enumerate(FEATURES) if name not in ("cosine", "cosine_gap")]
    np.testing.assert_allclose(scored[:, others], plain[:, others], atol=1e-6)


def test_a_ranker_trained_with_another_sentence_model_or_a_missing_one_stops_start_up(tmp_path, make_settings):
    from assistant.app import Services
    from core.errors import ModelUnavailable

    with pytest.raises(ConfigError, match="trained with sentence_model 'mpnet'"):
        Services(make_settings(tmp_path / "kb", HELPDESK_MODEL__SENTENCE_MODEL="kb")).extractor
    with pytest.raises(ModelUnavailable, match="sentence_model"):
        Services(make_settings(tmp_path / "gone", HELPDESK_MODEL__SENTENCE_MODEL=str(tmp_path / "absent"))).extractor
    # Without a learned ranker any scorer goes: the fixed blend reads the knowledge base's cosine.
    assert Services(make_settings(tmp_path / "blend", HELPDESK_MODEL__SENTENCE_MODEL="kb",
                                  HELPDESK_MODEL__EXTRACTIVE_RANKER="none")).extractor.ranker is None


def test_a_missing_or_mismatched_ranker_stops_start_up(tmp_path):
    with pytest.raises(ConfigError, match="extractive_ranker"):
        load_ranker(str(tmp_path / "absent.json"))
    body = json.loads(DEFAULT_RANKER.read_text())
    body["features"] = body["features"][:-1]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(body))
    with pytest.raises(ConfigError, match="other features"):
        load_ranker(str(other))


@pytest.mark.parametrize("kind", ["trees", "linear"])
def test_training_learns_which_sentences_hold_the_facts(services, tmp_path, kind):
    from retrieval.ranker_training import train_ranker

    items = [
        {"question": "how long do I have to send something back", "source": "returns-policy.md", "facts": ["30 days"]},
        {"question": "what does it cost to return stuff I just don't like", "source": "returns-policy.md",
         "facts": ["$6.95"]},
        {"question": "how many points do I get per dollar", "source": "larkspur-rewards.md", "facts": ["1 point"],
         "followup": {"question": "and how many for a reward?", "facts": ["200 points"]}},
        {"question": "is there a student discount", "source": None, "facts": [], "answerable": False},
    ]
    ranker = train_ranker(items, services.retriever, services.reranker, kind=kind)
    assert isinstance(ranker, TreeRanker if kind == "trees" else SentenceRanker)
    assert ranker.meta["questions"] == 4 and 0 < ranker.meta["positives"] < ranker.meta["sentences"]
    ranker.save(tmp_path / "r.json")
    again = read_ranker(tmp_path / "r.json")
    assert type(again) is type(ranker)
    hits = services.retriever.context_for(items[0]["question"])
    x, candidates = features(items[0]["question"], hits, services.reranker, services.retriever.term_weights)
    best = candidates[int(np.argmax(again.score(x)))]
    assert "30 days" in best.text
    np.testing.assert_allclose(again.score(x), ranker.score(x), atol=1e-3)


def test_a_list_item_answer_brings_the_sentence_that_introduces_its_list(services):
    from retrieval.extract import ExtractiveAnswerer

    hits = [Hit("list-intro", "accessibility.md", "Accessibility > Alternative formats\n\n"
                "On request and free of charge we can provide:\n"
                "- Large-print versions of manuals and invoices\n"
                "- Braille versions of safety instructions (allow 10 business days)\n"
                "- Plain-text versions for screen readers", 0.6)]
    extract = ExtractiveAnswerer(services.reranker, min_support=0.0, max_sentences=1).answer(
        "can my blind dad get the safety instructions in braille, how long?", hits)
    assert extract is not None
    assert extract.text.startswith("On request and free of charge we can provide: [1] Braille versions")


def test_a_follow_up_is_read_with_the_question_before_it(services):
    from retrieval.extract import ExtractiveAnswerer

    hits = [Hit("follow-up-costs", "shipping.md", "Shipping > Costs\n\n"
                "Gift wrap costs $5.95 per item and includes a card. "
                "Express shipping costs $14.95 and arrives in 2 business days. "
                "Returns by post cost $6.95, deducted from the refund.", 0.5)]
    extractor = ExtractiveAnswerer(services.reranker, min_support=0.0, max_sentences=1)
    alone = extractor.answer("and what does that cost?", hits)
    read_together = extractor.answer("and what does that cost?", hits, ["how fast is express shipping"])
    assert read_together is not None and read_together.text.startswith("Express shipping costs $14.95")
    assert alone is not None and alone.text != read_together.text


def test_the_nouns_of_a_question_leave_out_pronouns_verbs_and_chat_words():
    from retrieval.nouns import NounFinder

    assert NounFinder()("do u guys have a podcast? she got the oeko-tex towels") == [
        "podcast", "oeko", "tex", "towels"]
    # Who asks and when never makes a question one the articles do not cover.
    assert NounFinder()("my husband spoke to the guy at the showroom yesterday about a podcast") == [
        "showroom", "podcast"]


def test_words_no_chunk_holds_are_unknown_in_every_plain_form(services):
    retriever = services.retriever
    services.ensure_samples()
    # "warranty" and "refunds" (for "refund") are in the sample articles; "podcast" is in none.
    assert retriever.unknown_words(["warranty", "refunds", "podcast", "zzyzx"]) == ["podcast", "zzyzx"]


def test_each_noun_the_articles_never_name_lowers_the_support(services):
    from retrieval.extract import ExtractiveAnswerer
    from retrieval.nouns import NounFinder

    hits = [Hit("military", "shipping.md", "Shipping > Military addresses\n\n"
                "We ship to APO, FPO and DPO military addresses by USPS at the standard rate.", 0.6)]
    services.ensure_samples()
    plain = ExtractiveAnswerer(services.reranker, min_support=0.0, max_sentences=1)
    checked = ExtractiveAnswerer(services.reranker, min_support=0.0, max_sentences=1, nouns=NounFinder(),
                                 unknown_words=services.retriever.unknown_words, unknown_penalty=0.2)
    question = "do you give a veterans discount or a podcast"  # the articles name neither
    assert checked.unknown(question) == ["veterans", "podcast"]
    before, after = plain.answer(question, hits), checked.answer(question, hits)
    assert before is not None and after is not None
    assert after.support == pytest.approx(before.support - 0.4, abs=1e-3)
    strict = ExtractiveAnswerer(services.reranker, min_support=before.support - 0.1, max_sentences=1,
                                nouns=NounFinder(), unknown_words=services.retriever.unknown_words,
                                unknown_penalty=0.2)
    assert strict.answer(question, hits) is None  # passed on its support alone; not with the penalty
    assert strict.answer("how do you ship to military addresses", hits) is not None
    assert services.extractor.unknown(question) == ["veterans", "podcast"]  # on by default


def test_the_exported_trees_score_as_scikit_learn_does():
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.random((400, len(FEATURES))).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 5] > 0.8)
    model = HistGradientBoostingClassifier(max_iter=20, max_depth=3, random_state=0).fit(x, y)
    np.testing.assert_allclose(TreeRanker.from_sklearn(model, {}).score(x), model.decision_function(x), atol=1e-9)
