"""Small TF1 hub-format bertseq2seq modules, built in the on-disk layout that tfhub.dev serves.

A module is a directory with
- `saved_model.pb`: a TF1 SavedModel (graph mode, `tf.compat.v1.saved_model.Builder`) whose graph holds
  the variables, a `SentencepieceOp` node carrying a real SentencePiece model (trained here) and a
  tokenize op using it; or, for WordPiece modules, a `vocab.txt` asset and a lookup table reading it;
- `tfhub_module.pb`: hub's `ModuleDef` message with `format: FORMAT_V3`;
- `variables/variables.{index,data-*}`: the variables under the names of DESIGN.md section 2,
  `global_step` included.

The variable names are spelled out here, independently of the package's naming code, so that the
tests check the converter against the documented names rather than against itself.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

# Tests use these sizes unless they say otherwise.
SIZES = dict(hidden=32, layers=2, heads=4, intermediate=37, positions=40)

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a summary of the news in one short sentence",
    "translation models read a source and write a target",
    "the encoder reads the article and the decoder writes the headline",
    "sentence fusion joins two sentences into one",
    "split and rephrase turns one long sentence into two",
    "beam search keeps the best four hypotheses at every step",
    "shared weights make the model smaller and often better",
]


def train_sentencepiece(vocab_size: int = 60) -> bytes:
    """A real SentencePiece model (unigram) with the released models' special ids:
    pad 0, eos 1, bos 2, unk 3."""
    import sentencepiece as spm

    stream = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 20), model_writer=stream, vocab_size=vocab_size,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, model_type="unigram", hard_vocab_limit=False,
        minloglevel=2)
    return stream.getvalue()


def wordpiece_vocab() -> list[str]:
    """A small cased BERT-style vocabulary."""
    words = sorted({w for line in CORPUS for w in line.split()})
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "The", *words, "##s", "##ing"]


def _layer_names(prefix: str, body: bool, cross: bool) -> list[str]:
    """Variable names of one layer under `prefix` (`bert/encoder/layer_0`)."""
    names = []
    if body:
        names += [f"{prefix}/attention/self/{p}/{leaf}" for p in ("query", "key", "value")
                  for leaf in ("kernel", "bias")]
        names += [f"{prefix}/attention/output/dense/{leaf}" for leaf in ("kernel", "bias")]
        names += [f"{prefix}/attention/output/LayerNorm/{leaf}" for leaf in ("gamma", "beta")]
    if cross:
        names += [f"{prefix}/attention/encdec/{p}/{leaf}" for p in ("query", "key", "value")
                  for leaf in ("kernel", "bias")]
        names += [f"{prefix}/attention/encdec_output/dense/{leaf}" for leaf in ("kernel", "bias")]
        names += [f"{prefix}/attention/encdec_output/LayerNorm/{leaf}" for leaf in ("gamma", "beta")]
    if body:
        names += [f"{prefix}/intermediate/dense/{leaf}" for leaf in ("kernel", "bias")]
        names += [f"{prefix}/output/dense/{leaf}" for leaf in ("kernel", "bias")]
        names += [f"{prefix}/output/LayerNorm/{leaf}" for leaf in ("gamma", "beta")]
    return names


def variable_names(layout: str, layers: int = SIZES["layers"], decoder_layers: int | None = None) -> list[str]:
    """Every variable name of a module (without global_step), DESIGN.md section 2.

    layout "separate": full `bert/decoder/layer_N` layers; "coupled": the decoder reuses
    `bert/encoder/layer_N` and only its cross-attention (`encdec*`) lives under `bert/decoder/`.
    """
    names = ["bert/embeddings/word_embeddings", "bert/embeddings/position_embeddings",
             "bert/embeddings/LayerNorm/gamma", "bert/embeddings/LayerNorm/beta"]
    for i in range(layers):
        names += _layer_names(f"bert/encoder/layer_{i}", body=True, cross=False)
    for i in range(layers if decoder_layers is None else decoder_layers):
        names += _layer_names(f"bert/decoder/layer_{i}", body=layout == "separate", cross=True)
    return names


def _shape(name: str, vocab: int, hidden: int, intermediate: int, positions: int) -> tuple:
    leaf = name.rsplit("/", 1)[1]
    if name.endswith("word_embeddings"):
        return (vocab, hidden)
    if name.endswith("position_embeddings"):
        return (positions, hidden)
    if leaf in ("gamma", "beta"):
        return (hidden,)
    if "/intermediate/" in name:
        return (hidden, intermediate) if leaf == "kernel" else (intermediate,)
    if name.split("/")[3:5] == ["output", "dense"]:  # the FFN's output projection
        return (intermediate, hidden) if leaf == "kernel" else (hidden,)
    return (hidden, hidden) if leaf == "kernel" else (hidden,)


def random_variables(layout: str, vocab: int, seed: int = 0, hidden: int = SIZES["hidden"],
                     layers: int = SIZES["layers"], intermediate: int = SIZES["intermediate"],
                     positions: int = SIZES["positions"], **_) -> dict[str, np.ndarray]:
    """Random float32 values for `variable_names(layout)`: kernels [in, out], LayerNorm near identity."""
    rng = np.random.default_rng(seed)
    values = {}
    for name in variable_names(layout, layers):
        shape = _shape(name, vocab, hidden, intermediate, positions)
        if name.endswith("gamma"):
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(("beta", "bias")):
            value = 0.1 * rng.standard_normal(shape)
        elif "embeddings" in name:
            value = 0.5 * rng.standard_normal(shape)
        else:
            value = rng.standard_normal(shape) / np.sqrt(shape[0])
        values[name] = value.astype(np.float32)
    return values


def _tokenizer_graph(text, spm_model: bytes | None, vocab_path: str | None):
    """ids [batch, len] int32 for `text` [batch], with the module's own tokenizer ops."""
    if spm_model is not None:
        from tensorflow_text.python.ops.sentencepiece_tokenizer import gen_sentencepiece_tokenizer as gen

        handle = gen.sentencepiece_op(model=spm_model)
        values, splits = gen.sentencepiece_tokenize_op(handle, text, nbest_size=0, alpha=1.0, add_bos=False,
                                                       add_eos=False, reverse=False, out_type=tf.int32)
        return tf.RaggedTensor.from_row_splits(values, splits).to_tensor()
    if vocab_path is not None:
        asset = tf.constant(vocab_path, name="vocab_file")
        tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS, asset)
        table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(asset, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                          tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), default_value=1)
        words = tf.strings.split(text)
        return tf.cast(table.lookup(words).to_tensor(), tf.int32)
    return tf.cast(tf.strings.to_hash_bucket_fast(tf.strings.split(text), 10).to_tensor(), tf.int32)


def build_module(directory: str, variables: dict, spm_model: bytes | None = None,
                 vocab: list[str] | None = None, global_step: int = 1234, module_prefix: bool = False) -> str:
    """Writes a TF1 hub module to `directory` (which must not exist) and returns it.

    variables: hub name -> array; `global_step` is added. The graph's `default` signature maps `text`
    [batch] to the token ids and their word embeddings, as a module using its own tokenizer would.
    `module_prefix` prefixes every variable name with `module/` (some exporters scope the module so).
    """
    vocab_path = None
    if vocab is not None:
        # The Builder copies each asset under its base name; the real modules ship `vocab.txt`.
        vocab_path = os.path.join(tempfile.mkdtemp(), "vocab.txt")
        with open(vocab_path, "w", encoding="utf-8") as f:
            f.write("".join(token + "\n" for token in vocab))
    with tf.Graph().as_default() as graph:
        # Ref variables (VariableV2), as the TF1 exporters of 2020 wrote them.
        step = tf.compat.v1.get_variable("global_step", initializer=tf.constant(global_step, tf.int64),
                                         trainable=False, use_resource=False)
        graph.add_to_collection(tf.compat.v1.GraphKeys.GLOBAL_STEP, step)
        prefix = "module/" if module_prefix else ""
        tf_vars = {name: tf.compat.v1.get_variable(prefix + name, initializer=tf.constant(value), use_resource=False)
                   for name, value in variables.items()}
        text = tf.compat.v1.placeholder(tf.string, [None], name="text")
        ids = _tokenizer_graph(text, spm_model, vocab_path)
        words = tf_vars["bert/embeddings/word_embeddings"]
        encoded = tf.gather(words, tf.clip_by_value(ids, 0, tf.shape(words)[0] - 1))
        signature = tf.compat.v1.saved_model.predict_signature_def(
            inputs={"text": text}, outputs={"input_ids": ids, "embeddings": encoded})
        init_tables = tf.compat.v1.tables_initializer()  # created before any run: graph edits after one warn
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(directory)
            builder.add_meta_graph_and_variables(
                sess, [], signature_def_map={"default": signature},
                assets_collection=graph.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS),
                main_op=init_tables)
            builder.save()
    if vocab_path is not None:
        shutil.rmtree(os.path.dirname(vocab_path))
    with open(os.path.join(directory, "tfhub_module.pb"), "wb") as f:
        f.write(module_def(format_=3))
    return directory


def module_def(format_: int = 3) -> bytes:
    """Serialized `tensorflow_hub.ModuleDef` (tensorflow_hub/module_def.proto): field 1 `format`
    (enum; FORMAT_V3 = 3), varint-encoded. tensorflow_hub 0.16 no longer ships the generated module."""
    return bytes([0x08, format_])
