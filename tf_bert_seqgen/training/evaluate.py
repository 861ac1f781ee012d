"""The one scoring pipeline: texts from a model (checkpoint or SavedModel, through `text_generators`), metrics
against references, and the Keras callback that reports them during training."""

from __future__ import annotations

import keras

from tf_bert_seqgen import _compat
from tf_bert_seqgen import truecase as truecasing
from tf_bert_seqgen.metrics import compute_metrics
from tf_bert_seqgen.models import EncoderDecoder
from tf_bert_seqgen.saved_models import path_kind
from tf_bert_seqgen.text_generators import CheckpointTexts, SavedModelTexts, generate_all
from tf_bert_seqgen.tokenizers import load_tokenizer
from tf_bert_seqgen.training.data import as_pairs


def generate_texts(model, tokenizer, sources, batch_size: int = 32, max_source_length: int | None = None,
                   progress: bool = False, truecase: bool = False, **generation_options) -> list[str]:
    """Decodes every source with `model.generate` (greedy unless num_beams > 1), batched by length
    (`text_generators.generate_all` of a `CheckpointTexts`).

    Args:
        model: an `EncoderDecoder`.
        tokenizer: its tokenizer.
        sources: list of str.
        batch_size: int. Texts per `generate` call.
        max_source_length: int or None. Source truncation; None: the tokenizer's.
        progress: bool. A progress bar on stderr when there is more than one batch.
        truecase: bool. Cased and spaced from the source (`truecase.restore`), as an uncased model's
            export writes.
        **generation_options: as `EncoderDecoder.generate`; `max_new_tokens` defaults to 64 (fewer if the
            decoder's positions end sooner).

    Returns:
        The generated texts, in the order of `sources`.
    """
    generation_options.setdefault("max_new_tokens", min(64, model.config.decoder.max_position_embeddings - 1))
    generator = CheckpointTexts(model, tokenizer, truecase, max_source_length, **generation_options)
    return generate_all(generator, list(sources), batch_size, progress)


def as_tokenizer_writes(tokenizer, texts) -> list[str]:
    """`texts` encoded and decoded again: the closest string the model can produce. An uncased WordPiece
    model writes "if the string contains no timezone, utc is assumed." for "If the string ... UTC ...".
    """
    return tokenizer.decode(tokenizer.encode(list(texts)), skip_special_tokens=True)


def evaluate_generation(model, tokenizer, data, batch_size: int = 32, max_source_length: int | None = None,
                        references: str = "tokenizer", **generation_options) -> dict:
    """ROUGE-1/2/L, BLEU, SARI (0-100) and exact match (0-1) of generated text against the targets.

    Args:
        model: an `EncoderDecoder`.
        tokenizer: its tokenizer.
        data: (source, target) pairs or a `.tsv` / `.jsonl` path.
        batch_size: int. Texts per `generate` call (sources sorted by length first).
        max_source_length: int or None. Source truncation; None: the tokenizer's.
        references: str. `"tokenizer"` scores sources, predictions and targets as the tokenizer writes
            them (`as_tokenizer_writes`: lowercased for an uncased model, WordPiece spacing around quotes),
            so that exact match means "produced the target's tokens"; `"raw"` against the texts as given
            (case-sensitive exact match and BLEU, which an uncased model can never match on capitalised
            text).
        **generation_options: as `EncoderDecoder.generate` (num_beams, max_new_tokens, ...).

    Returns:
        dict: `compute_metrics`' scores plus "predictions" (list of str, in data order).

    Raises:
        ValueError: an unknown `references`.
    """
    if references not in ("tokenizer", "raw"):
        raise ValueError(f"references must be 'tokenizer' or 'raw', got {references!r}")
    pairs = as_pairs(data)
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    predictions = generate_texts(model, tokenizer, sources, batch_size, max_source_length, **generation_options)
    return score_predictions(sources, predictions, targets, tokenizer if references == "tokenizer" else None)


def score_predictions(sources, predictions, targets, tokenizer=None, normalize_predictions: bool = True,
                      **metric_options) -> dict:
    """`compute_metrics` plus "predictions" (as given); with a tokenizer, sources, predictions and targets
    as it writes them (`as_tokenizer_writes`: an uncased model's cased output, `truecase.restore`, is
    compared lowercased and WordPiece-spaced like the targets), else the texts as given.
    normalize_predictions=False: with a tokenizer, the predictions as given (before truecasing existed:
    the same figures but where re-encoding the model's own decoding is not exact, 2 of 71 fusion tests).
    metric_options: `compute_metrics`' (sari_lowercase=False, sari_tokenize="none": SARI as written).
    """
    scored = list(predictions)
    if tokenizer is not None:
        sources, targets = as_tokenizer_writes(tokenizer, sources), as_tokenizer_writes(tokenizer, targets)
        if normalize_predictions:
            scored = as_tokenizer_writes(tokenizer, scored)
    return {**compute_metrics(sources, scored, targets, **metric_options), "predictions": list(predictions)}


def float32_model(model):
    """`model` itself, or, when it computes in (b)float16 or lives in a distribution strategy, a float32
    copy outside it (`EncoderDecoder.cast`): generation and export need plain float32 variables (the
    decoder's cache is float32)."""
    if _compat.distribute_strategy_of(model) is None and model.compute_dtype == "float32":
        return model
    # A mixed-precision run has changed the global policy; the copy must not pick it up anywhere.
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        return model.cast("float32")
    finally:
        keras.mixed_precision.set_global_policy(policy)


class GenerationEvaluation(keras.callbacks.Callback):
    """Decodes dev pairs every `every` epochs and adds `val_<metric>` (sari, exact_match, ...) to the
    epoch logs, so History, the progress bar and TensorBoard show them.

    Args:
        tokenizer: the model's tokenizer.
        data: dev (source, target) pairs or a `.tsv` / `.jsonl` path.
        every: int. Epochs between evaluations (the last epoch is always evaluated).
        batch_size: int. Texts per `generate` call.
        **generation_options: as `EncoderDecoder.generate`.
    """

    def __init__(self, tokenizer, data, every: int = 1, batch_size: int = 32, **generation_options):
        super().__init__()
        self.tokenizer = tokenizer
        self.pairs = as_pairs(data)
        self.every = max(1, int(every))
        self.batch_size = batch_size
        self.generation_options = generation_options

    def on_epoch_end(self, epoch, logs=None):
        last = self.model.stop_training or epoch + 1 == self.params.get("epochs")
        if logs is None or ((epoch + 1) % self.every and not last):
            return
        results = evaluate_generation(float32_model(self.model), self.tokenizer, self.pairs, self.batch_size,
                                      **self.generation_options)
        logs.update({f"val_{k}": float(v) for k, v in results.items() if k != "predictions"})


def predict(path: str, sources, batch_size: int = 32, progress: bool = False, **generation_options) -> list[str]:
    """Predictions of a SavedModel (its own decoding options) or a checkpoint directory (ours), which writes
    what its export would (cased and spaced from the source when its tokenizer is uncased).

    Args:
        path: str. An exported SavedModel or a checkpoint directory.
        sources: list of str.
        batch_size: int. Texts per call.
        progress: bool. A progress bar on stderr when there is more than one batch.
        **generation_options: a checkpoint's decoding (as `EncoderDecoder.generate`).

    Returns:
        The generated texts, in the order of `sources`.

    Raises:
        ValueError: decoding options for a SavedModel, whose decoding was fixed at export.
    """
    if path_kind(path) == "savedmodel":
        if generation_options:
            raise ValueError("decoding options are fixed when a SavedModel is exported; evaluate the checkpoint")
        return generate_all(SavedModelTexts(path), list(sources), batch_size, progress)
    model = EncoderDecoder.from_pretrained(path)
    tokenizer = load_tokenizer(path)
    return generate_texts(model, tokenizer, list(sources), batch_size, progress=progress,
                          truecase=truecasing.needed(tokenizer), **generation_options)
