"""Evaluation metrics for generated text: SARI, ROUGE, BLEU and exact match.

SARI (Xu et al., 2016, TACL) is the headline metric of the DiscoFuse and WikiSplit papers. No allowed
dependency ships it, so it is written here, following the tensor2tensor `sari_hook` /
HF `evaluate` "sari" definition (0/0 counts as 1, keep recall fixed as in cocoxu/simplification#6),
and it reproduces their published values (see tests/test_metrics.py). Like EASSE's `corpus_sari`, it can
also score case-sensitively (`lowercase=False`) and on whitespace-split words (`tokenize="none"`), where
"bull - dog" is not "bull-dog" and "years ," not "years,": text judged as written.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

_MAX_NGRAM = 4
_TOKENIZE_13A = Tokenizer13a()


def _check_lengths(**columns: Sequence) -> None:
    """Raises ValueError when the inputs are empty or not all of the same length."""
    lengths = {name: len(col) for name, col in columns.items()}
    if not any(lengths.values()):
        raise ValueError(f"metrics need at least one example, got empty inputs {lengths}")
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs must have the same number of examples, got {lengths}")


SARI_TOKENIZERS = ("13a", "none")


def _normalize(text: str, lowercase: bool = True, tokenize: str = "13a") -> list[str]:
    """By default lowercases and applies sacrebleu's 13a tokenizer, as HF `evaluate` and EASSE do before
    SARI, so that punctuation glued to a word ("accepted.") is its own token; tokenize="none" splits on
    whitespace only."""
    if tokenize not in SARI_TOKENIZERS:
        raise ValueError(f"tokenize must be one of {SARI_TOKENIZERS}, got {tokenize!r}")
    text = text.lower() if lowercase else text
    return (_TOKENIZE_13A(text) if tokenize == "13a" else text).split()


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def _sari_ngram(src: Counter, pred: Counter, refs: Counter, num_refs: int) -> tuple[float, float, float]:
    """Keep F1, deletion precision and addition F1 for one n-gram order.

    Source and prediction counts are scaled by the number of references so that they compare with the
    reference counts summed over all references (a reference n-gram "weighs" 1/num_refs).
    """
    src_rep = Counter({g: c * num_refs for g, c in src.items()})
    pred_rep = Counter({g: c * num_refs for g, c in pred.items()})

    # Keep: n-grams of the source the prediction kept, judged against the references.
    kept = src_rep & pred_rep
    kept_good = kept & refs
    kept_all = src_rep & refs
    keep_p = sum(kept_good[g] / kept[g] for g in kept_good) / len(kept) if kept else 1.0
    keep_r = sum(kept_good.values()) / sum(kept_all.values()) if kept_all else 1.0

    # Deletion: only precision counts (the paper argues deletion recall over-rewards dropping words).
    deleted = src_rep - pred_rep
    deleted_good = deleted - refs
    del_p = sum(deleted_good[g] / deleted[g] for g in deleted_good) / len(deleted) if deleted else 1.0

    # Addition: set based, an added n-gram is good when some reference has it.
    added = set(pred) - set(src)
    added_good = added & set(refs)
    added_all = set(refs) - set(src)
    add_p = len(added_good) / len(added) if added else 1.0
    add_r = len(added_good) / len(added_all) if added_all else 1.0

    return _f1(keep_p, keep_r), del_p, _f1(add_p, add_r)


def sari_sentence(source: str, prediction: str, references: Sequence[str], lowercase: bool = True,
                  tokenize: str = "13a") -> float:
    """SARI of one prediction in [0, 1]: mean over n = 1..4 of keep F1, deletion precision, addition F1.

    lowercase / tokenize: how texts become words (`_normalize`); the defaults are HF `evaluate`'s.
    """
    if not references:
        raise ValueError("SARI needs at least one reference per example")
    src, pred = _normalize(source, lowercase, tokenize), _normalize(prediction, lowercase, tokenize)
    refs = [_normalize(r, lowercase, tokenize) for r in references]
    total = 0.0
    for n in range(1, _MAX_NGRAM + 1):
        ref_counts = sum((_ngrams(r, n) for r in refs), Counter())
        total += sum(_sari_ngram(_ngrams(src, n), _ngrams(pred, n), ref_counts, len(refs)))
    return total / (3 * _MAX_NGRAM)


def sari(sources: Sequence[str], predictions: Sequence[str], references_list: Sequence[Sequence[str]],
         lowercase: bool = True, tokenize: str = "13a") -> float:
    """Corpus SARI in [0, 100]: the mean of sentence scores (keep F1, deletion precision and addition F1
    over n = 1..4) times 100, as tensor2tensor and HF `evaluate` compute it.

    Args:
        sources: list of str. The inputs.
        predictions: list of str. One output per input.
        references_list: `references_list[i]` holds the references of example i (a bare string counts as
            one reference).
        lowercase: bool. Lowercase before scoring (HF `evaluate`'s default).
        tokenize: str. `"13a"` (sacrebleu's words, the default) or `"none"` (whitespace-split);
            `lowercase=False, tokenize="none"` scores text as written (case and spacing count).

    Returns:
        float in [0, 100].

    Raises:
        ValueError: the three lists differ in length or are empty, or an example has no reference.
    """
    _check_lengths(sources=sources, predictions=predictions, references=references_list)
    refs = [[r] if isinstance(r, str) else list(r) for r in references_list]
    scores = [sari_sentence(s, p, r, lowercase, tokenize) for s, p, r in zip(sources, predictions, refs, strict=True)]
    return 100.0 * sum(scores) / len(scores)


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure, Porter-stemmed as in the summarization papers.

    Args:
        predictions: list of str.
        references: list of str, one per prediction.

    Returns:
        {"rouge1", "rouge2", "rougeL"}: floats in [0, 100].

    Raises:
        ValueError: the lists differ in length or are empty.
    """
    from rouge_score import rouge_scorer  # imported here: it pulls in nltk, slow for other metrics

    _check_lengths(predictions=predictions, references=references)
    keys = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(keys), use_stemmer=True)
    totals = dict.fromkeys(keys, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        scores = scorer.score(ref, pred)  # rouge_score takes (target, prediction)
        for key in keys:
            totals[key] += scores[key].fmeasure
    return {key: 100.0 * total / len(predictions) for key, total in totals.items()}


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU with sacrebleu's defaults (13a tokenization, one reference each).

    Args:
        predictions: list of str.
        references: list of str, one per prediction.

    Returns:
        float in [0, 100].

    Raises:
        ValueError: the lists differ in length or are empty.
    """
    import sacrebleu

    _check_lengths(predictions=predictions, references=references)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Fraction of predictions equal to their reference after collapsing whitespace.

    Args:
        predictions: list of str.
        references: list of str, one per prediction.

    Returns:
        float in [0, 1].

    Raises:
        ValueError: the lists differ in length or are empty.
    """
    _check_lengths(predictions=predictions, references=references)
    hits = sum(" ".join(p.split()) == " ".join(r.split()) for p, r in zip(predictions, references, strict=True))
    return hits / len(predictions)


# A word as written: letters and digits, with inner apostrophes and hyphens ("don't", "bull-dog").
_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")


def words_as_written(text: str) -> list[str]:
    """The words of `text`, case kept, punctuation around them dropped: "Bull-dog, isn't it?" ->
    ["Bull-dog", "isn't", "it"]."""
    return _WORD.findall(text)


def novel_word_rate(sources: Sequence[str], predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of all predicted words (`words_as_written`, case-sensitive) found in neither that example's
    source nor its reference: words a rewriting model invented or misspelled.

    Args:
        sources: list of str.
        predictions: list of str, one per source.
        references: list of str, one per source.

    Returns:
        float in [0, 1]; 0.0 when the predictions hold no words.

    Raises:
        ValueError: the lists differ in length or are empty.
    """
    _check_lengths(sources=sources, predictions=predictions, references=references)
    novel = total = 0
    for source, prediction, reference in zip(sources, predictions, references, strict=True):
        known = set(words_as_written(source)) | set(words_as_written(reference))
        words = words_as_written(prediction)
        total += len(words)
        novel += sum(w not in known for w in words)
    return novel / total if total else 0.0


def compute_metrics(sources: Sequence[str], predictions: Sequence[str], references: Sequence[str],
                    sari_lowercase: bool = True, sari_tokenize: str = "13a") -> dict:
    """All metrics for single-reference data.

    Args:
        sources: list of str.
        predictions: list of str, one per source.
        references: list of str, one per source.
        sari_lowercase: bool. `sari`'s `lowercase` (default: HF `evaluate`'s SARI).
        sari_tokenize: str. `sari`'s `tokenize`.

    Returns:
        {"rouge1", "rouge2", "rougeL", "bleu", "sari"} in [0, 100] and "exact_match" in [0, 1].

    Raises:
        ValueError: the lists differ in length or are empty.
    """
    _check_lengths(sources=sources, predictions=predictions, references=references)
    return {
        **rouge(predictions, references),
        "bleu": bleu(predictions, references),
        "sari": sari(sources, predictions, [[r] for r in references], sari_lowercase, sari_tokenize),
        "exact_match": exact_match(predictions, references),
    }
