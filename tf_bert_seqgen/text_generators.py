"""Texts in, texts out: the one front end the command line, evaluation, Apache Beam and the benchmarks run.

A `TextGenerator` turns a batch of texts into generated texts. Two kinds exist:

- `CheckpointTexts`: a Keras `EncoderDecoder` and its tokenizer, decoding with `model.generate`; it writes
  what the model's export would (cased and spaced from the source when the tokenizer is uncased).
- `SavedModelTexts`: an exported SavedModel, run through one of its text signatures (its decoding options
  fixed at export, except `max_new_tokens` / `length_penalty` through `generate_with_options`).

    generator = open_text_generator("saved_models/fusion/5")
    generate_all(generator, ["It rains. We stay in."])   # -> ["It rains, so we stay in."]

`generate_all` batches texts by length and returns them in order; `generate_in_order` yields them batch by
batch, for output that streams.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import Protocol

import tensorflow as tf
from tqdm import tqdm

from tf_bert_seqgen import saved_models
from tf_bert_seqgen import truecase as truecasing
from tf_bert_seqgen.export import read_export_info
from tf_bert_seqgen.generation import GenerationConfig
from tf_bert_seqgen.models import EncoderDecoder
from tf_bert_seqgen.tokenizers import load_tokenizer  # also registers the tf-text ops SavedModels hold


class TextGenerator(Protocol):
    """Anything that generates one text for each text of a batch."""

    def generate(self, texts: Sequence[str]) -> list[str]:
        """texts [b] -> generated texts [b], in order."""
        ...


class CheckpointTexts:
    """`model.generate` on texts: tokenized by `tokenizer`, decoded up to eos.

    Args:
        model: an `EncoderDecoder`.
        tokenizer: its tokenizer.
        truecase: bool or None. Cased and spaced from the source (`truecase.restore`); None: when the
            tokenizer is uncased, as an export of the model writes.
        max_source_length: int or None. Source truncation; None: the tokenizer's.
        **options: decoding, as `EncoderDecoder.generate` (num_beams, max_new_tokens, ...).
    """

    def __init__(self, model, tokenizer, truecase: bool | None = None, max_source_length: int | None = None,
                 **options):
        self.model, self.tokenizer = model, tokenizer
        self.truecase = truecasing.needed(tokenizer) if truecase is None else bool(truecase)
        self.max_source_length = max_source_length
        self.options = options

    @classmethod
    def from_pretrained(cls, path: str, **options) -> CheckpointTexts:
        """A checkpoint directory, preset name or HF repo id: its model and tokenizer, with `options`."""
        return cls(EncoderDecoder.from_pretrained(path), load_tokenizer(path), **options)

    def generate(self, texts: Sequence[str]) -> list[str]:
        inputs = self.tokenizer(list(texts), max_length=self.max_source_length)
        ids = self.model.generate(inputs["input_ids"], inputs["attention_mask"], **self.options).numpy()
        # Column 0 is the decoder start token; the text ends at eos, as the exported model's does.
        decoded = self.tokenizer.decode(ids[:, 1:], skip_special_tokens=True, stop_at_eos=True)
        if not self.truecase:
            return decoded
        strip_accents = getattr(self.tokenizer, "strip_accents", True)
        return [t.decode("utf-8") for t in truecasing.restore(list(texts), decoded, strip_accents).numpy()]


class SavedModelTexts:
    """An exported SavedModel's text signature on texts (`tf.saved_model.load`, as TF Serving runs it).

    Args:
        path: str. The SavedModel (a local path or any file system TensorFlow reads).
        signature: str. A signature with one string [batch] input and one string [batch] output.
        max_new_tokens: None (the exported value), or a different limit, through the export's
            `generate_with_options`.
        length_penalty: None (the exported value), or a different one, the same way.
        num_beams: must be None: fixed at export.

    Raises:
        FileNotFoundError: `path` is not a SavedModel.
        ValueError: no such signature or not a text signature (read before anything loads), or num_beams.
    """

    def __init__(self, path: str, signature: str = "serving_default", max_new_tokens: int | None = None,
                 length_penalty: float | None = None, num_beams: int | None = None):
        if num_beams is not None:
            raise ValueError("num_beams is fixed when a SavedModel is exported; re-export to change it")
        self.path = path
        self._options = {}
        if max_new_tokens is None and length_penalty is None:
            self._input, self._output = saved_models.text_signature(path, signature)
        else:
            signature, (self._input, self._output) = "generate_with_options", ("text", "generated_text")
            if signature not in saved_models.signature_defs(path):
                raise ValueError(f"{path} has no generate_with_options signature: its decoding is fixed")
            exported = GenerationConfig(**read_export_info(path)["generation"])
            max_new_tokens = exported.max_new_tokens if max_new_tokens is None else max_new_tokens
            length_penalty = exported.length_penalty if length_penalty is None else length_penalty
            self._options = {"max_new_tokens": tf.constant(max_new_tokens, tf.int32),
                             "length_penalty": tf.constant(length_penalty, tf.float32)}
        self.signature = signature
        self.loaded = tf.saved_model.load(path)  # kept: a signature needs its module alive
        self._call = self.loaded.signatures[signature]

    def generate_bytes(self, texts: Sequence[bytes]) -> list[bytes]:
        """UTF-8 texts [b] -> UTF-8 generated texts [b]: what Apache Beam's workers pass through a proxy."""
        return list(self._call(**{self._input: tf.constant(list(texts), tf.string)}, **self._options)
                    [self._output].numpy())

    def generate(self, texts: Sequence[str]) -> list[str]:
        return [t.decode("utf-8") for t in self.generate_bytes([t.encode("utf-8") for t in texts])]


def open_text_generator(path: str, **options) -> TextGenerator:
    """The generator for `path`: `SavedModelTexts` for an export, else `CheckpointTexts.from_pretrained`
    (decoding `options` as each takes them)."""
    if saved_models.path_kind(path) == "savedmodel":
        return SavedModelTexts(path, **options)
    return CheckpointTexts.from_pretrained(path, **options)


def progress_bar(count: int, batch_size: int, show: bool = True):
    """The start offsets of `count` items in batches, as a tqdm bar on stderr when `show` and there is more
    than one batch. Use it as a context manager: the bar ends its line even when a batch fails."""
    starts = range(0, count, batch_size)
    return tqdm(starts, disable=not show or len(starts) < 2, unit="batch", file=sys.stderr, dynamic_ncols=True)


def generate_in_order(generator: TextGenerator, texts: Sequence[str], batch_size: int = 32,
                      progress: bool = False) -> Iterator[str]:
    """The generated text of each of `texts`, in order, a batch at a time (output can stream)."""
    with progress_bar(len(texts), batch_size, progress) as starts:
        for start in starts:
            yield from generator.generate(texts[start:start + batch_size])


def generate_all(generator: TextGenerator, texts: Sequence[str], batch_size: int = 32,
                 progress: bool = False) -> list[str]:
    """The generated text of each of `texts`, in order; batched by length, so that little of a batch is
    padding."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    generated = generate_in_order(generator, [texts[i] for i in order], batch_size, progress)
    results = [""] * len(texts)
    for i, text in zip(order, generated, strict=True):
        results[i] = text
    return results
