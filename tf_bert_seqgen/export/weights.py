"""What an export stores for each weight matrix, and the export's copy of the model that reads it.

The export works on its own copy of the model and hands each Dense layer, the word-embedding lookup and the
LM head the `storage.Matrix` it reads (`layer.stored`); the other weights (biases, LayerNorm, position
embeddings) are saved as they are. By mode and `weights_dtype`:

| mode  | float32 (default)           | float16                          | bfloat16                  | int8                      |
|-------|-----------------------------|----------------------------------|---------------------------|---------------------------|
| graph | kernels [in, out]; tables as they are | kernels [in, out] and tables in float16, cast once per call | refused: needs XLA | only where measured faster than float32 (`tuning.graph_mode_ms`) |
| XLA   | the model's own ([out, in]) | refused: graph mode only         | kernels and tables, streamed | kernels and tables, one scale per output channel, streamed |

A model that computes in bfloat16 stores what it computes with (graph mode: [in, out] kernels). The word
tables of a shared model are one table, stored once.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_bert_seqgen import _compat, layers
from tf_bert_seqgen.models import EncoderDecoder
from tf_bert_seqgen.products import DEQUANTIZED, UNMEASURED, ProductForms
from tf_bert_seqgen.storage import Bfloat16Matrix, FloatMatrix, Int8Matrix, Matrix, quantize_int8

WEIGHTS_DTYPES = ("float32", "float16", "bfloat16", "int8")
# Kept in fewer bytes than float32, streamed by the XLA products (`products.streamed`).
STREAMED_DTYPES = ("bfloat16", "int8")


def check_weights_dtype(weights_dtype: str | None, model_dtype: str, jit_compile: bool) -> str:
    """The dtype an export stores its matrices in (`weights_dtype`, else the model's); refuses what the table
    in the module docstring refuses, with the reason."""
    stored = weights_dtype or model_dtype
    if stored not in WEIGHTS_DTYPES:
        raise ValueError(f"unknown weights_dtype {weights_dtype!r}; choose one of {', '.join(WEIGHTS_DTYPES)}")
    if stored == model_dtype:
        return stored
    if model_dtype != "float32":
        raise ValueError(f"weights_dtype={stored!r} stores a float32 model's weights in fewer bytes; this is a "
                         f"{model_dtype} model: export it as it is, or cast it to float32 first")
    if stored == "float16" and jit_compile:
        raise ValueError("weights_dtype='float16' is for graph-mode exports (cast to float32 once per call); "
                         "with jit_compile=True (--xla) store 'bfloat16' or 'int8', whose bytes XLA streams")
    if stored == "bfloat16" and not jit_compile:
        raise ValueError("weights_dtype='bfloat16' streams half the bytes under XLA only: add jit_compile=True "
                         "(--xla), or store 'float16' in a graph-mode export")
    return stored


@dataclasses.dataclass
class Entry:
    """One stored matrix: the layers that read it, the Keras weight it stands for, the `Matrix`."""

    readers: list
    weight: object  # the copy's Keras variable ([out, in] kernel or [v, h] table)
    matrix: Matrix


@dataclasses.dataclass
class StoredWeights:
    """The export's copy of a model (its layers read `entries`' matrices) and what the SavedModel saves:
    `kept` (the copy's other weights, as they are) and each matrix's variables, in that order."""

    model: EncoderDecoder
    entries: list
    kept: list
    dtype: str
    forms: ProductForms = UNMEASURED

    @property
    def matrices(self) -> list[Matrix]:
        return [entry.matrix for entry in self.entries]

    @property
    def stored_variables(self) -> list[tf.Variable]:
        return [v for matrix in self.matrices for v in matrix.variables]

    @property
    def streamed(self) -> bool:
        """Whether products take per-row-count forms under XLA (int8, bfloat16 storage)."""
        return any(not isinstance(m, FloatMatrix) for m in self.matrices)

    def row_counts_with_own_forms(self) -> list[int]:
        """The decode-step row counts whose products take a block form: each needs its own program traced
        with that row count (the others, float32's form, share one)."""
        if not self.streamed:
            return []
        return [rows for rows, form in self.forms.decode if form != DEQUANTIZED]


def store(model, dtype: str, jit_compile: bool, forms: ProductForms = UNMEASURED) -> StoredWeights:
    """A copy of `model` whose layers read `dtype` matrices (module docstring); `model` is left as it was."""
    copy = EncoderDecoder.from_config(model.get_config())
    for target, source in zip(copy.weights, model.weights, strict=True):
        target.assign(source)
    stored = plan(copy, dtype, jit_compile, forms)
    for entry in stored.entries:
        for layer in entry.readers:
            layer.stored = entry.matrix
    return stored


def plan(model, dtype: str, jit_compile: bool, forms: ProductForms = UNMEASURED) -> StoredWeights:
    """The matrices `store` would hand `model`'s layers, made from its weights, not handed."""
    entries = []
    if not jit_compile or dtype in STREAMED_DTYPES:
        for dense in (layer for layer in _compat.sublayers(model) if isinstance(layer, layers.Dense)):
            entries.append(Entry([dense], dense.kernel, _kernel_matrix(dense.kernel, dtype, forms)))
    if dtype != model.compute_dtype:
        for embeddings in dict.fromkeys(stack.embeddings for stack in (model.encoder, model.decoder)):
            readers = [embeddings] + ([model.decoder.lm_head] if embeddings is model.decoder.embeddings else [])
            table = embeddings.word_embeddings.embeddings
            entries.append(Entry(readers, table, _table_matrix(table, dtype, forms)))
    replaced = {id(entry.weight) for entry in entries}
    return StoredWeights(model, entries, [w for w in model.weights if id(w) not in replaced], dtype, forms)


def _kernel_matrix(kernel, dtype: str, forms: ProductForms) -> Matrix:
    """A Dense kernel [out, in] as `dtype` stores it; float: Keras' [in, out] (graph-mode exports)."""
    if dtype in STREAMED_DTYPES:
        return _streamed(kernel, dtype, forms)
    return FloatMatrix(_variable(tf.cast(tf.transpose(kernel), dtype)), layout="in_out")


def _table_matrix(table, dtype: str, forms: ProductForms) -> Matrix:
    """A word table [v, h] as `dtype` stores it (the LM head's [out, in])."""
    if dtype in STREAMED_DTYPES:
        return _streamed(table, dtype, forms)
    return FloatMatrix(_variable(tf.cast(table, dtype)))


def _streamed(weights, dtype: str, forms: ProductForms) -> Matrix:
    if dtype == "bfloat16":
        return Bfloat16Matrix(_variable(tf.cast(weights, tf.bfloat16)), forms)
    values, scale = quantize_int8(tf.convert_to_tensor(weights).numpy())
    return Int8Matrix(_variable(values), _variable(scale), forms)


def _variable(value) -> tf.Variable:
    return tf.Variable(value, trainable=False)


def restore(stored: StoredWeights, kept_values, stored_values, source: str):
    """Assigns saved values (an export's `model_variables`, `stored_variables`) to `stored`, then writes each
    matrix back into the Keras weight it stands for (dequantized, [out, in]): the model's own weights are
    then the export's. Refuses values that do not fit, naming `source`."""
    targets = list(stored.kept) + stored.stored_variables
    values = list(kept_values) + list(stored_values)

    def refuse(what):
        raise ValueError(f"{source}: its stored weights do not fit the model its config describes ({what}); "
                         "was it written by another version of tf_bert_seqgen?")

    if (len(kept_values), len(stored_values)) != (len(stored.kept), len(stored.stored_variables)):
        refuse(f"{len(kept_values)} + {len(stored_values)} tensors for {len(stored.kept)} + "
               f"{len(stored.stored_variables)} weights")
    mismatched = [getattr(t, "path", t.name) for t, v in zip(targets, values, strict=True)
                  if tuple(t.shape) != tuple(v.shape) or tf.as_dtype(t.dtype) != tf.as_dtype(v.dtype)]
    if mismatched:
        refuse(f"shapes or dtypes differ for {', '.join(mismatched[:3])}")
    for target, value in zip(targets, values, strict=True):
        target.assign(value)
    for entry in stored.entries:
        entry.weight.assign(tf.cast(entry.matrix.dense(), entry.weight.dtype))
