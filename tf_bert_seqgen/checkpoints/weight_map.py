"""One walk over a model's parameters under canonical names, and the checkpoint naming schemes on top.

Canonical names (`layer_3/cross_attention/query/kernel`) are independent of any checkpoint format; each
format (HF PyTorch, TF Hub bertseq2seq) is a function from a canonical name to its own tensor name plus
whether the tensor is stored transposed. Loading and saving are then the same code for every format.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np


def model_class(name: str):
    """The model class registered with Keras as `tf_bert_seqgen>{name}` ("EncoderDecoder", ...). The loaders
    build models by that name, as KerasHub's preset loaders do, instead of importing them: the models import
    the loaders (`from_pretrained`, `from_preset`), so the import graph keeps one direction."""
    found = keras.saving.get_registered_object(f"tf_bert_seqgen>{name}")
    if found is None:
        raise RuntimeError(f"tf_bert_seqgen>{name} is not registered: import tf_bert_seqgen (its models) first")
    return found


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model; the message names every offending tensor."""


def stack_parameters(stack) -> list[tuple[str, object]]:
    """(canonical name, variable) for an encoder or decoder stack, in a fixed order.

    A shared decoder lists the encoder's variables again: aliases are how formats that store shared
    weights twice (HF) and once (our own loader) are both served.
    """
    emb = stack.embeddings
    params = [
        ("embeddings/word", emb.word_embeddings.embeddings),
        ("embeddings/position", emb.position_embeddings.embeddings),
        ("embeddings/norm/gamma", emb.layer_norm.gamma),
        ("embeddings/norm/beta", emb.layer_norm.beta),
    ]
    for i, layer in enumerate(stack.transformer_layers):
        blocks = [("self_attention", layer.self_attention)]
        if layer.cross_attention is not None:
            blocks.append(("cross_attention", layer.cross_attention))
        for block_name, block in blocks:
            for part in ("query", "key", "value", "output_dense"):
                dense = getattr(block, part)
                params += [(f"layer_{i}/{block_name}/{part}/kernel", dense.kernel),
                           (f"layer_{i}/{block_name}/{part}/bias", dense.bias)]
            params += [(f"layer_{i}/{block_name}/norm/gamma", block.layer_norm.gamma),
                       (f"layer_{i}/{block_name}/norm/beta", block.layer_norm.beta)]
        ffn = layer.feed_forward
        for part in ("intermediate", "output_dense"):
            dense = getattr(ffn, part)
            params += [(f"layer_{i}/ffn/{part}/kernel", dense.kernel), (f"layer_{i}/ffn/{part}/bias", dense.bias)]
        params += [(f"layer_{i}/ffn/norm/gamma", ffn.layer_norm.gamma),
                   (f"layer_{i}/ffn/norm/beta", ffn.layer_norm.beta)]
    if hasattr(stack, "lm_head"):
        params.append(("lm_head/bias", stack.lm_head.bias))
    return params


_HF_BLOCK = {"self_attention": ("attention.self", "attention.output"),
             "cross_attention": ("crossattention.self", "crossattention.output")}
_HF_DENSE = {"query": "query", "key": "key", "value": "value"}
_HF_NORM = {"gamma": "weight", "beta": "bias"}


def hf_name(canonical: str) -> tuple[str, bool]:
    """Canonical name -> (HF BertGeneration name within a stack, stored transposed?). PyTorch's
    `nn.Linear` weights are [out, in], as our kernels, so nothing is transposed."""
    parts = canonical.split("/")
    if parts[0] == "embeddings":
        if parts[1] == "norm":
            return f"embeddings.LayerNorm.{_HF_NORM[parts[2]]}", False
        return f"embeddings.{parts[1]}_embeddings.weight", False
    if parts[0] == "lm_head":
        return "lm_head.bias", False
    layer = f"encoder.layer.{parts[0].split('_')[1]}"
    block, part, leaf = parts[1], parts[2], parts[3]
    if block == "ffn":
        module = {"intermediate": "intermediate.dense", "output_dense": "output.dense", "norm": "output.LayerNorm"}
        prefix = f"{layer}.{module[part]}"
    else:
        attention, output = _HF_BLOCK[block]
        prefix = {"output_dense": f"{layer}.{output}.dense", "norm": f"{layer}.{output}.LayerNorm"}.get(
            part, f"{layer}.{attention}.{part}")
    if part == "norm":
        return f"{prefix}.{_HF_NORM[leaf]}", False
    return f"{prefix}.{'weight' if leaf == 'kernel' else 'bias'}", False


@dataclasses.dataclass
class Entry:
    """One tensor of a checkpoint bound to one model variable."""

    name: str
    variable: object
    transposed: bool


def bind(stacks: list[tuple[object, callable]]) -> list[Entry]:
    """Checkpoint entries for (stack, canonical -> (name, transposed)) pairs, all aliases included."""
    entries = []
    for stack, naming in stacks:
        for canonical, variable in stack_parameters(stack):
            name, transposed = naming(canonical)
            entries.append(Entry(name, variable, transposed))
    return entries


def assign(entries: list[Entry], tensors: dict[str, np.ndarray], source: str, optional=(),
           ignore=lambda name: False):
    """Checks every entry against `tensors`, then assigns; nothing is assigned unless all checks pass.

    A variable listed under several names (shared weights) needs only one of them present; where several
    are, they must be equal. `optional` names may be absent (the variable keeps its initial value);
    `ignore(name)` marks tensors that the model has no use for. Errors name every offending tensor.
    """
    by_variable: dict[int, list[Entry]] = {}
    for entry in entries:
        by_variable.setdefault(id(entry.variable), []).append(entry)
    problems, plan, used = [], [], set()
    for aliases in by_variable.values():
        variable = aliases[0].variable
        values, present = [], False
        for entry in aliases:
            if entry.name in tensors:
                used.add(entry.name)
                present = True
                stored = np.asarray(tensors[entry.name])
                value = stored.T if entry.transposed else stored
                if tuple(value.shape) != tuple(variable.shape):
                    expected = tuple(variable.shape)[::-1] if entry.transposed else tuple(variable.shape)
                    problems.append(f"{entry.name}: shape {tuple(stored.shape)} in the checkpoint, the model "
                                    f"expects {expected}")
                    continue
                values.append((entry.name, value))
        if not values:
            if not present and not all(entry.name in optional for entry in aliases):
                problems.append(f"{aliases[0].name}: missing")
            continue
        first_name, first = values[0]
        for name, other in values[1:]:
            if not np.array_equal(first, other):
                problems.append(f"{name}: differs from {first_name}, but the model shares these weights")
        plan.append((variable, first))
    unexpected = sorted(n for n in tensors if n not in used and not ignore(n))
    problems += [f"{name}: unexpected (no such weight in the model)" for name in unexpected]
    if problems:
        shown = "\n  ".join(problems[:40])
        more = f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""
        raise CheckpointError(f"{source} does not fit the model:\n  {shown}{more}")
    for variable, value in plan:
        variable.assign(value.astype(variable.dtype))


def collect(entries: list[Entry]) -> dict[str, np.ndarray]:
    """Every entry's tensor by its checkpoint name (shared weights under each of their names)."""
    return {e.name: (e.variable.numpy().T if e.transposed else e.variable.numpy()) for e in entries}
