"""SavedModels on disk, read without loading them: what a path is, the signatures, the SentencePiece model a
graph holds. The one reader of `saved_model.pb` in the package.

Reading the proto, as `saved_model_cli show` does, restores no variable and traces nothing, so a wrong
path, signature or input name fails in the time of an import: when a pipeline is built, when a command
starts. Loading a SavedModel to run it is `text_generators.SavedModelTexts`' (and the export's own reload
check).
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

SAVED_MODEL_PB = "saved_model.pb"
TFHUB_MODULE_PB = "tfhub_module.pb"
PATH_KINDS = ("savedmodel", "tfhub", "checkpoint", "hub-name")


def is_saved_model(path: str | None) -> bool:
    """Whether `path` is a SavedModel directory (a TF2 export; a TF1 hub module is one too, see `path_kind`)."""
    return path is not None and tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_PB))


def is_handle(name: str) -> bool:
    """Whether `name` (not a local path) is a TF Hub handle rather than an HF repo id or a preset name."""
    return name.startswith(("http://", "https://")) or "tfhub.dev" in name or name.startswith("google/bertseq2seq")


def path_kind(path: str) -> str:
    """What `path` names, one of `PATH_KINDS`: 'savedmodel' (an export), 'tfhub' (a TF1 hub module directory
    or a handle), 'checkpoint' (our / an HF directory) or 'hub-name' (a preset name or an HF repo id).

    Raises:
        ValueError: a directory that is none of these, or a file.
    """
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, TFHUB_MODULE_PB)):
            return "tfhub"
        if os.path.isfile(os.path.join(path, SAVED_MODEL_PB)):
            return "savedmodel"
        if os.path.isfile(os.path.join(path, "config.json")):
            return "checkpoint"
        raise ValueError(f"{path} is neither a SavedModel, a TF Hub module nor a checkpoint directory "
                         f"(no {SAVED_MODEL_PB}, {TFHUB_MODULE_PB} or config.json)")
    if os.path.exists(path):
        raise ValueError(f"{path} is a file; expected a model directory")
    return "tfhub" if is_handle(path) else "hub-name"


def read_proto(path: str) -> saved_model_pb2.SavedModel:
    """The parsed `saved_model.pb` of the SavedModel directory `path` (any file system TensorFlow reads).

    Raises:
        FileNotFoundError: no saved_model.pb there.
        ValueError: the file is not a SavedModel proto.
    """
    file = os.path.join(path, SAVED_MODEL_PB)
    if not tf.io.gfile.exists(file):
        raise FileNotFoundError(f"{path} is not a SavedModel (no {SAVED_MODEL_PB})")
    proto = saved_model_pb2.SavedModel()
    try:
        with tf.io.gfile.GFile(file, "rb") as f:
            proto.ParseFromString(f.read())
    except Exception as e:  # protobuf's DecodeError
        raise ValueError(f"{file} is not a SavedModel proto: {e}") from e
    if not proto.meta_graphs:  # an empty file parses as an empty proto
        raise ValueError(f"{file} is not a SavedModel proto: it holds no meta graph")
    return proto


def signature_defs(path: str) -> dict:
    """{name: SignatureDef} of the first meta graph, without TF's own `__saved_model_init_op`."""
    signatures = read_proto(path).meta_graphs[0].signature_def
    return {name: signatures[name] for name in sorted(signatures) if not name.startswith("__")}


def describe_signatures(path: str) -> dict:
    """{name: {"inputs": {name: "string(None,)"}, "outputs": {...}}}: `saved_model_cli show`'s answer."""
    def spec(info):
        return f"{tf.as_dtype(info.dtype).name}{tf.TensorShape(info.tensor_shape)}"

    return {name: {"inputs": {k: spec(v) for k, v in signature.inputs.items()},
                   "outputs": {k: spec(v) for k, v in signature.outputs.items()}}
            for name, signature in signature_defs(path).items()}


def text_signature(path: str, signature: str = "serving_default") -> tuple[str, str]:
    """(input name, output name) of `signature`, which must take one string tensor [batch] and return one.

    Raises:
        FileNotFoundError: `path` is not a SavedModel.
        ValueError: no such signature, or not a text signature; the message names what there is.
    """
    signatures = signature_defs(path)
    if signature not in signatures:
        raise ValueError(f"{path} has no signature {signature!r}; it has {', '.join(signatures)}")
    spec = signatures[signature]

    def strings(tensors):
        return [name for name, info in tensors.items()
                if info.dtype == tf.string.as_datatype_enum and len(info.tensor_shape.dim) == 1]

    inputs, outputs = strings(spec.inputs), strings(spec.outputs)
    if len(spec.inputs) != 1 or len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"signature {signature!r} of {path} is not a text signature (one string [batch] "
                         f"input, one string [batch] output): it takes {sorted(spec.inputs)} and returns "
                         f"{sorted(spec.outputs)}")
    return inputs[0], outputs[0]


def sentencepiece_models(path: str) -> list[bytes]:
    """The distinct serialized SentencePiece models of the `SentencepieceOp` nodes of the SavedModel `path`,
    in every meta graph: its graph's nodes and its function library's (TF2 graphs create resources inside
    functions)."""
    models = []
    for meta_graph in read_proto(path).meta_graphs:
        graph = meta_graph.graph_def
        nodes = list(graph.node) + [n for function in graph.library.function for n in function.node_def]
        models += [n.attr["model"].s for n in nodes if n.op == "SentencepieceOp" and "model" in n.attr]
    return list(dict.fromkeys(m for m in models if m))
