"""`export_saved_model`, and reading an export back into a model (`load_model`, `load_export`)."""

from __future__ import annotations

import os
import time

import tensorflow as tf

from tf_bert_seqgen import cpu, generation, tuning
from tf_bert_seqgen.export import rows as row_policy
from tf_bert_seqgen.export import warmup, weights
from tf_bert_seqgen.export.files import EXPORT_TOKENIZER_DIR, read_export_info, write_export_info
from tf_bert_seqgen.export.module import GenerationModule, shape_buckets
from tf_bert_seqgen.generation_config import merged_options
from tf_bert_seqgen.io_utils import atomic_directory
from tf_bert_seqgen.models import EncoderDecoder
from tf_bert_seqgen.products import ProductForms
from tf_bert_seqgen.tokenizers import load_tokenizer


def export_saved_model(model, tokenizer, export_dir: str, *, max_input_length: int | None = None,
                       max_batch_size: int = row_policy.DEFAULT_MAX_BATCH_SIZE, jit_compile: bool = False,
                       overwrite: bool = False, truecase: bool | None = None, weights_dtype: str | None = None,
                       batch_timeout_micros: int | None = row_policy.DEFAULT_BATCH_TIMEOUT_MICROS,
                       product_forms: ProductForms | dict | None = None, row_buckets=None, width_buckets=None,
                       **generation_options) -> str:
    """Writes the SavedModel (with a TF Serving warm-up file and the tokenizer's files) to `export_dir`,
    atomically.

    The export is written to a temporary sibling, loaded back and run once, and only then moved into
    place; an existing `export_dir` is never replaced unless `overwrite=True`.
    max_batch_size: rows per model call; a larger request is run in slices of this size.
    truecase: text signatures return text cased and spaced from the source (`truecase.restore`); None: when
        the tokenizer lowercases (an uncased vocabulary), which is when it is needed.
    weights_dtype: how the matrices (Dense kernels, word tables) are stored (`export.weights`): None (the
        model's dtype), "float16" (graph mode: half the bytes on disk, cast back once per call), "bfloat16"
        or "int8" (XLA: half or a quarter of the bytes, which every decode step streams; activations stay
        float32).
    product_forms: for "int8" / "bfloat16", the form of each product (`products.ProductForms` or its
        dict); None: measured now, on this CPU, for every row count the export decodes (`tuning`).
    batch_timeout_micros: how long a call of a text signature waits for concurrent calls to join its
        batch (calls that arrive while a batch runs join the next one anyway); None: calls are not batched.
    row_buckets, width_buckets: for XLA, the row counts and source widths (tokens) a call is padded to,
        ascending, ending at max_batch_size and max_input_length: one program per pair, each compiled (or
        loaded) at every start. None: powers of two. Fewer buckets start faster and pad more (the export
        guide's measurements).
    generation_options: as `EncoderDecoder.generate` (num_beams, max_new_tokens, length_penalty, ...); those
        not given come from the model's `generation_defaults`, as in `generate`.
    """
    options = merged_options(getattr(model, "generation_defaults", {}), generation_options)
    config = generation.resolve_config(model.config, **options)
    if config.num_return_sequences != 1:
        raise ValueError("text signatures return one text per input: num_return_sequences must be 1")
    max_input_length = max_input_length or min(tokenizer.max_length or 512,
                                               model.config.encoder.max_position_embeddings)
    cpu.warn_if_bfloat16_is_emulated(model.compute_dtype)
    dtype = weights.check_weights_dtype(weights_dtype, model.compute_dtype, jit_compile)
    rows, widths = shape_buckets(jit_compile, max_batch_size, max_input_length, row_buckets, width_buckets)
    forms, tuned = _product_forms(model, dtype, jit_compile, config, rows, max_input_length, product_forms)
    stored = weights.store(model, dtype, jit_compile, forms)
    module = GenerationModule(stored, tokenizer, config, max_input_length, jit_compile=jit_compile,
                              max_batch_size=max_batch_size, truecase=truecase,
                              batch_timeout_micros=batch_timeout_micros, row_buckets=rows,
                              width_buckets=widths)
    with atomic_directory(export_dir, overwrite=overwrite) as tmp:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        warmup.write_warmup_requests(tmp, module)
        tokenizer.save_pretrained(os.path.join(tmp, EXPORT_TOKENIZER_DIR))
        write_export_info(tmp, {
            "generation": dict(vars(config)), "max_input_length": max_input_length,
            "max_batch_size": max_batch_size, "batch_timeout_micros": batch_timeout_micros,
            "jit_compile": jit_compile, "truecase": module.truecase, "weights_dtype": dtype,
            **({"row_buckets": rows, "width_buckets": widths} if jit_compile else {}),
            **({"product_forms": forms.to_dict(), **tuned} if stored.streamed else {}),
            "model": model.config.to_dict(), "tokenizer": type(tokenizer).__name__})
        _verify(tmp)
    return export_dir


def decode_row_counts(config: generation.GenerationConfig, row_buckets: list[int]) -> list[int]:
    """The rows a decode step of the export has: each row bucket's texts times the beams."""
    return [rows * config.num_beams for rows in row_buckets]


def _product_forms(model, dtype, jit_compile, config, row_buckets, max_input_length, given):
    """(forms, what to record of their measurement) for a `dtype` export. Streamed dtypes under XLA: `given`,
    else measured for the export's row counts. int8 in graph mode: refused unless this CPU runs it at least
    as fast as float32 (measured), since a graph-mode product must widen the weights at every step."""
    if dtype not in weights.STREAMED_DTYPES:
        return ProductForms(), {}
    decoder = model.config.decoder
    if not jit_compile:
        int8_ms, float32_ms = tuning.graph_mode_ms(decoder, "int8"), tuning.graph_mode_ms(decoder, "float32")
        if int8_ms > float32_ms:
            raise ValueError(f"weights_dtype='int8' in graph mode is slower than float32 on this CPU (a decode "
                             f"step's products: {int8_ms:.1f} ms against {float32_ms:.1f} ms): add "
                             "jit_compile=True (--xla), whose products stream the int8 bytes")
        return ProductForms(), {"graph_mode_ms": {"int8": round(int8_ms, 3), "float32": round(float32_ms, 3)}}
    if given is not None:
        return (given if isinstance(given, ProductForms) else ProductForms.from_dict(given)), {}
    start = time.perf_counter()
    forms, timings = tuning.measure_forms(decoder, dtype, decode_row_counts(config, row_buckets),
                                          encoder_rows=max_input_length)
    return forms, {"product_timings_ms": timings, "product_forms_measured_on": cpu.describe(),
                   "product_forms_seconds": round(time.perf_counter() - start, 1)}


def _verify(export_dir: str):
    """Loads the export and runs its default signature; a broken export never reaches its final path."""
    loaded = tf.saved_model.load(export_dir)
    out = loaded.signatures["serving_default"](text=tf.constant(warmup.WARMUP_TEXTS[:1]))["generated_text"]
    if out.shape != (1,):
        raise RuntimeError(f"exported serving_default returned shape {out.shape}, expected (1,)")


def load_model(export_dir: str) -> EncoderDecoder:
    """The `EncoderDecoder` an export holds, to fine-tune further or to generate with other options: built
    from the export's config with the weights it stores (float16-, bfloat16- and int8-stored ones come back
    as float32, with their format's rounding). The export's decoding options are
    `read_export_info(export_dir)["generation"]`.
    """
    info = read_export_info(export_dir)
    model = EncoderDecoder.from_config(info["model"])
    dtype = info.get("weights_dtype") or model.compute_dtype
    stored = weights.plan(model, dtype, info["jit_compile"])
    loaded = tf.saved_model.load(export_dir)
    # Exports before int8 storage named the stored matrices `in_out_kernels`.
    stored_values = getattr(loaded, "stored_variables", None)
    if stored_values is None:
        stored_values = loaded.in_out_kernels
    weights.restore(stored, loaded.model_variables, stored_values, export_dir)
    return model


def load_export(export_dir: str):
    """(model, tokenizer, options) of an export: what `export_saved_model` needs to write it again, in
    another storage or mode. options: its decoding (`GenerationConfig` fields), max_input_length,
    max_batch_size, batch_timeout_micros, truecase and (XLA) its shape buckets, as recorded."""
    info = read_export_info(export_dir)
    tokenizer_dir = os.path.join(export_dir, EXPORT_TOKENIZER_DIR)
    if not os.path.isdir(tokenizer_dir):
        raise FileNotFoundError(f"{export_dir} holds no tokenizer files ({EXPORT_TOKENIZER_DIR}): it was exported "
                                "before exports carried them; export its checkpoint instead")
    options = {**info["generation"], "max_input_length": info["max_input_length"],
               "max_batch_size": info["max_batch_size"], "truecase": info["truecase"]}
    for name in ("batch_timeout_micros", "row_buckets", "width_buckets"):  # not in older exports
        if name in info:
            options[name] = info[name]
    return load_model(export_dir), load_tokenizer(tokenizer_dir), options
