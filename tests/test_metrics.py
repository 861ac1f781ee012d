"""Metric tests: SARI against published values, ROUGE/BLEU against their libraries' own behaviour."""

from collections import Counter

import pytest

from tf_bert_seqgen import metrics

# The SARI paper's running example (Xu et al. 2016, Table 2), also used by tensor2tensor's
# sari_hook_test.py and the HF `evaluate` sari metric card.
SOURCE = "About 95 species are currently accepted."
REFERENCES = [
    "About 95 species are currently known.",
    "About 95 species are now accepted.",
    "95 species are now accepted.",
]


@pytest.mark.parametrize(
    "prediction, expected",
    [
        # HF evaluate metric card / docstring: {'sari': 26.953601953601954}
        ("About 95 you now get in.", 26.953601953601954),
        # tensor2tensor sari_hook_test.py testSariSent2 / testSariSent3 (0.6170966, 0.5088682, 7 places).
        ("About 95 species are now agreed .", 61.70966),
        ("About 95 species are currently agreed .", 50.88682),
    ],
)
def test_sari_published_sentence_values(prediction, expected):
    assert metrics.sari([SOURCE], [prediction], [REFERENCES]) == pytest.approx(expected, abs=1e-5)


def test_sari_published_corpus_value():
    # Reported for HF evaluate's sari in huggingface.co/spaces/evaluate-metric/sari/discussions/2.
    sources = [SOURCE, "The cat perched on the mat."]
    predictions = ["About 95 you now get in.", "Cat on mat."]
    references = [REFERENCES, ["The cat sat on the mat.", "The cat is on the mat.", "The cat sat."]]
    assert metrics.sari(sources, predictions, references) == pytest.approx(29.13266517433184, abs=1e-9)


def test_sari_corpus_is_mean_of_sentences():
    first = metrics.sari_sentence(SOURCE, "About 95 you now get in.", REFERENCES)
    second = metrics.sari_sentence(SOURCE, "About 95 species are now agreed .", REFERENCES)
    corpus = metrics.sari([SOURCE] * 2, ["About 95 you now get in.", "About 95 species are now agreed ."],
                          [REFERENCES] * 2)
    assert corpus == pytest.approx(50 * (first + second))


def test_sari_identity_cases():
    # HF metric card: source = prediction = reference -> 100.
    assert metrics.sari([SOURCE], [SOURCE], [[SOURCE]]) == 100.0
    # tensor2tensor testMatchingOutputAndReference: prediction = reference -> 100 whatever the source.
    assert metrics.sari(["3 1 4 1 5 9 2 6 5"], ["3 1 4 1 80 70"], [["3 1 4 1 80 70"]]) == 100.0
    # A bare string counts as a single reference; case and glued punctuation are normalised away.
    assert metrics.sari([SOURCE], [SOURCE.lower().replace(".", " .")], [SOURCE]) == 100.0


def test_sari_ngram_toy_counts():
    # tensor2tensor testKeepScore: input '1 2', output '2', references ['1 2', '1'] -> keep F1 = 6/15.
    keep, _, _ = metrics._sari_ngram(Counter({"1": 1, "2": 1}), Counter({"2": 1}), Counter({"1": 2, "2": 1}), 2)
    assert keep == pytest.approx(6 / 15)
    # tensor2tensor testDeletionScore: nothing deleted -> deletion precision is 1 (0/0 := 1).
    _, deletion, _ = metrics._sari_ngram(Counter({"1": 1, "2": 1}), Counter({"1": 1, "2": 1}), Counter({"1": 1}), 1)
    assert deletion == 1.0


def test_sari_hand_computed_unigram_bigram_case():
    # Source "a b", prediction "a c", reference "a c", computed by hand per n-gram order:
    # n=1: keep {a} good -> F1 1; deleted {b} not in ref -> P 1; added {c} in ref -> F1 1.
    # n=2: nothing kept, kept_all empty -> keep 1 (0/0); deleted {a b} not in ref -> 1; added {a c} good -> 1.
    # n=3,4: no n-grams anywhere -> all 0/0 -> 1. So the prediction is perfect: 100.
    assert metrics.sari(["a b"], ["a c"], [["a c"]]) == 100.0
    # Prediction "a b" (copy) against reference "a c":
    # n=1: kept {a, b}, only a in ref: P 1/2, R = 1/1 -> F1 2/3; no deletion -> 1;
    #      no addition: P 1, R 0 (c missed) -> F1 0.
    # n=2: kept {a b} not in ref: P 0, kept_all empty -> R 1 -> F1 0; del 1; add: P 1, R 0 -> 0.
    # n=3,4: 1, 1, 1.  Mean = (2/3+1+0 + 0+1+0 + 3 + 3) / 12 = 26/36.
    assert metrics.sari(["a b"], ["a b"], [["a c"]]) == pytest.approx(100 * 26 / 36)


@pytest.mark.parametrize("fn, args", [
    (metrics.sari, ([], [], [])),
    (metrics.rouge, ([], [])),
    (metrics.bleu, ([], [])),
    (metrics.exact_match, ([], [])),
    (metrics.compute_metrics, ([], [], [])),
])
def test_empty_inputs_raise(fn, args):
    with pytest.raises(ValueError, match="at least one example"):
        fn(*args)


@pytest.mark.parametrize("fn, args", [
    (metrics.sari, (["a"], ["a", "b"], [["a"]])),
    (metrics.rouge, (["a"], ["a", "b"])),
    (metrics.bleu, (["a", "b"], ["a"])),
    (metrics.exact_match, (["a"], [])),
    (metrics.compute_metrics, (["a"], ["a"], ["a", "b"])),
])
def test_mismatched_lengths_raise(fn, args):
    with pytest.raises(ValueError, match="same number of examples"):
        fn(*args)


def test_sari_needs_a_reference():
    with pytest.raises(ValueError, match="at least one reference"):
        metrics.sari(["a"], ["a"], [[]])


def test_rouge_matches_library():
    from rouge_score import rouge_scorer

    preds = ["the cats were sitting on the mat", "a dog barked"]
    refs = ["the cat sat on the mat", "the dog is barking loudly"]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    expected = {k: 50 * sum(scorer.score(r, p)[k].fmeasure for p, r in zip(preds, refs, strict=True)) for k in
                ("rouge1", "rouge2", "rougeL")}
    assert metrics.rouge(preds, refs) == pytest.approx(expected)
    # Stemming: "cats"/"cat" and "barked"/"barking" match, so ROUGE-1 beats the unstemmed score.
    unstemmed = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=False).score(refs[0], preds[0])["rouge1"]
    assert metrics.rouge(preds[:1], refs[:1])["rouge1"] > 100 * unstemmed.fmeasure


def test_rouge_and_bleu_perfect_and_disjoint():
    text = ["the quick brown fox jumps over the lazy dog"]
    assert metrics.rouge(text, text) == pytest.approx({"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0})
    assert metrics.bleu(text, text) == pytest.approx(100.0)
    assert metrics.rouge(["alpha beta gamma"], ["delta epsilon zeta"])["rouge1"] == 0.0
    assert metrics.bleu(["alpha beta gamma delta"], ["epsilon zeta eta theta"]) == 0.0


def test_bleu_matches_sacrebleu():
    import sacrebleu

    preds = ["the cat sat on a mat today", "he read the book because it was good"]
    refs = ["the cat sat on the mat today", "he read the book as it was interesting"]
    assert metrics.bleu(preds, refs) == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    assert 0.0 < metrics.bleu(preds, refs) < 100.0


def test_exact_match_normalises_whitespace():
    assert metrics.exact_match(["a  b\tc ", "x"], [" a b c", "y"]) == 0.5
    assert metrics.exact_match(["A b"], ["a b"]) == 0.0  # case matters


def test_compute_metrics_keys_and_values():
    sources = ["The cat sat. It was on the mat.", "He left because it rained."]
    predictions = ["The cat sat on the mat.", "He left. It rained."]
    references = ["The cat sat on the mat.", "He left because it rained."]
    result = metrics.compute_metrics(sources, predictions, references)
    assert set(result) == {"rouge1", "rouge2", "rougeL", "bleu", "sari", "exact_match"}
    assert result["exact_match"] == 0.5
    assert result["bleu"] == pytest.approx(metrics.bleu(predictions, references))
    assert result["sari"] == pytest.approx(metrics.sari(sources, predictions, [[r] for r in references]))
    assert {k: result[k] for k in ("rouge1", "rouge2", "rougeL")} == pytest.approx(
        metrics.rouge(predictions, references))
    assert all(0.0 <= result[k] <= 100.0 for k in result)


def test_sari_counts_repeated_tokens():
    # SARI is count based: dropping one of the two periods while the reference keeps one is a wrong
    # deletion (unigram deletion precision 2/3), so even a perfect fusion scores below 100.
    score = metrics.sari(["The cat sat. It was on the mat."], ["The cat sat on the mat."],
                         [["The cat sat on the mat."]])
    assert score == pytest.approx(100 * (12 - 1 / 3) / 12)


def test_words_as_written_keep_case_and_inner_apostrophes_and_hyphens():
    assert metrics.words_as_written("Bull-dog, isn't it? (Café) 3.5") == ["Bull-dog", "isn't", "it", "Café", "3", "5"]
    assert metrics.words_as_written(" - , ; ") == []


def test_novel_word_rate_counts_words_in_neither_source_nor_reference():
    # Output words: the, cat, sat, but, Cat; known: The cat sat / The cat sat and it slept. Case counts, so
    # "the" and "Cat" are novel, and so is "but": 3 of 5.
    assert metrics.novel_word_rate(["The cat sat."], ["the cat sat, but Cat"], ["The cat sat, and it slept."]) == 0.6
    # Pooled over the corpus (4 novel of 8), not averaged per example; an empty output adds nothing.
    assert metrics.novel_word_rate(["a b", "c d", "e"], ["a b x y", "p q c d", ""], ["a b", "c d", "e"]) == 0.5
    assert metrics.novel_word_rate(["a"], [""], ["a"]) == 0.0
