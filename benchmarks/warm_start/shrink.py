"""A smaller BERT checkpoint directory: a pruned WordPiece vocabulary and, optionally, the bottom layers only.

    python benchmarks/warm_start/shrink.py <bert dir> <out dir> [--vocab-size N] [--layers 4]

Why prune the vocabulary when fine-tuning on a small set: the decoder's LM head is tied to the word
embeddings, and the softmax pushes every token that never appears as a target away from the hidden
states, a little at each step and always in the same direction. Adam normalises those tiny gradients
into full-size steps, so after a few hundred steps the embeddings of every token absent from the
training data are wrecked (MiniLM, 900 steps: rows moved by ~100% of their norm, results.md), and the
model cannot read or copy words it did not see in training. With the vocabulary restricted to the
training data's tokens plus single characters, an unseen word is spelled with trained pieces instead.
It also shrinks the model: the shipped fusion model must fit in 50 MB, and 11.7M of MiniLM BERTSHARE's
26M parameters are its 30522-row embedding table.

Kept tokens, in their original order (so [PAD] stays id 0):
1. the special tokens ([PAD], [UNK], [CLS], [SEP], [MASK]);
2. every single printable-ASCII character and its "##" form: any ASCII word can still be spelled out;
3. every token of the given texts as the original tokenizer splits them (the training data): those texts
   tokenize exactly as before (greedy longest-match finds the same pieces);
4. only with `vocab_size`: BERT's most frequent ASCII words and word pieces (its vocabulary lists them
   roughly by frequency after the characters) until that size: a vocabulary for English at large, in
   which ordinary words stay whole. Fine-tune such a vocabulary with the word embeddings frozen
   (`TrainingConfig(freeze_word_embeddings=True)`), for the reason above.
Characters outside ASCII that are not in the texts become [UNK] (after BERT's lowercasing and accent
stripping, which turn "café" into "cafe"). The kept rows and layers are the checkpoint's own weights, so
fine-tuning from the shrunk directory is the same warm start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import string

import numpy as np
from safetensors.numpy import load_file, save_file

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_LAYER = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")


def _read_vocab(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


def kept_token_ids(vocab: list[str], text_ids: set[int], vocab_size: int | None = None) -> list[int]:
    """Original ids to keep, sorted (see the module docstring for the rule)."""
    index = {token: i for i, token in enumerate(vocab)}
    printable = [c for c in string.printable if not c.isspace()]
    keep = {index[t] for t in SPECIAL_TOKENS if t in index}
    keep |= {index[t] for c in printable for t in (c, "##" + c) if t in index}
    keep |= set(text_ids)
    if vocab_size is None:
        return sorted(keep)
    if len(keep) > vocab_size:
        raise ValueError(f"the texts alone need {len(keep)} tokens, more than vocab_size={vocab_size}")
    first_word = index.get("the", 0)  # BERT: characters first, then whole words by frequency
    for i in range(first_word, len(vocab)):
        if len(keep) >= vocab_size:
            break
        if not vocab[i].startswith("[") and vocab[i].isascii():
            keep.add(i)
    return sorted(keep)


def shrink(source: str, out: str, texts, vocab_size: int | None = None, num_layers: int | None = None,
           max_position_embeddings: int | None = None) -> dict:
    """Writes the shrunk checkpoint (config.json, vocab.txt, model.safetensors, tokenizer files) to `out`.

    texts: the texts whose tokens the vocabulary keeps; None keeps the whole vocabulary.
    Returns a summary: kept token count, tokens of the texts, layers, positions, parameter count.
    """
    from tf_bert_seqgen.tokenizers import load_tokenizer

    vocab = _read_vocab(os.path.join(source, "vocab.txt"))
    if texts is None:  # keep the whole vocabulary (fewer layers / positions only)
        text_ids, keep = set(), list(range(len(vocab)))
    else:
        text_ids = {i for row in load_tokenizer(source).encode(list(texts)) for i in row}
        keep = kept_token_ids(vocab, text_ids, vocab_size)
    with open(os.path.join(source, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    num_layers = num_layers or config["num_hidden_layers"]
    max_positions = max_position_embeddings or config["max_position_embeddings"]
    tensors = {}
    for name, value in load_file(os.path.join(source, "model.safetensors")).items():
        layer = _LAYER.search(name)
        if layer and int(layer.group(1)) >= num_layers:
            continue
        if name.endswith("word_embeddings.weight"):
            value = value[keep]
        elif name.endswith("position_embeddings.weight"):
            value = value[:max_positions]
        elif name.endswith("position_ids"):
            value = value[..., :max_positions]
        tensors[name] = np.ascontiguousarray(value)
    config.update(vocab_size=len(keep), num_hidden_layers=num_layers, max_position_embeddings=max_positions)
    os.makedirs(out, exist_ok=True)
    save_file(tensors, os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(vocab[i] + "\n" for i in keep)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if os.path.isfile(os.path.join(source, name)):
            shutil.copy(os.path.join(source, name), os.path.join(out, name))
    parameters = sum(v.size for k, v in tensors.items() if not k.endswith("position_ids"))
    return {"vocab_size": len(keep), "from_texts": len(text_ids), "layers": num_layers,
            "max_position_embeddings": max_positions, "parameters": int(parameters)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="BERT directory (config.json, vocab.txt, model.safetensors)")
    parser.add_argument("out")
    parser.add_argument("--vocab-size", type=int, help="fill up to this size with frequent words (default: no)")
    parser.add_argument("--layers", type=int)
    parser.add_argument("--max-position-embeddings", type=int)
    parser.add_argument("--texts", nargs="*", default=[], help=".tsv files whose sources and targets must keep "
                                                                "their tokens (default: the fusion train split)")
    args = parser.parse_args(argv)
    if args.texts:
        from tf_bert_seqgen.training import read_pairs

        pairs = [p for path in args.texts for p in read_pairs(path)]
    else:
        from tf_bert_seqgen.data import load_fusion_split

        pairs = load_fusion_split("train")
    summary = shrink(args.source, args.out, [t for pair in pairs for t in pair], args.vocab_size, args.layers,
                     args.max_position_embeddings)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
