"""Inference commands: generate, export, warm-cache, convert, info."""

from __future__ import annotations

import argparse
import json
import os
import sys

from tf_bert_seqgen import saved_models
from tf_bert_seqgen.checkpoints import tfhub
from tf_bert_seqgen.cli.errors import CliError, as_flags
from tf_bert_seqgen.cli.flags import add_field_flags, field_values
from tf_bert_seqgen.cli.sources import default_model_dir, kind_of, load_model_and_tokenizer
from tf_bert_seqgen.config import read_config_json
from tf_bert_seqgen.export import (
    DEFAULT_BATCH_TIMEOUT_MICROS,
    WEIGHTS_DTYPES,
    export_saved_model,
    load_export,
    next_version_dir,
    read_export_info,
)
from tf_bert_seqgen.export.warmup import CACHE_FLAG, warm_cache
from tf_bert_seqgen.generation import GenerationConfig
from tf_bert_seqgen.io_utils import atomic_file
from tf_bert_seqgen.text_generators import CheckpointTexts, SavedModelTexts, generate_in_order


def generation_options(args) -> dict:
    """The decoding flags given (`add_decoding_flags`), as `GenerationConfig` options."""
    options = field_values(args, GenerationConfig, [n for n in DECODING_FLAGS if hasattr(args, n)], given_only=True)
    return {**options, **({"max_new_tokens": args.max_new_tokens} if args.max_new_tokens is not None else {})}


# GenerationConfig's fields the inference commands take as flags, None (not given) by default: the
# model's or the export's own decoding then holds.
DECODING_FLAGS = ("num_beams", "length_penalty")


def add_decoding_flags(p, beams: bool = True):
    add_field_flags(p, GenerationConfig, DECODING_FLAGS if beams else DECODING_FLAGS[1:], defaults=False)
    p.add_argument("--max-new-tokens", type=int, help="tokens to generate at most (max_length - 1)")


def _read_texts(args) -> list[str]:
    if args.texts and args.input:
        raise CliError("give texts as arguments or with --input, not both")
    if args.texts:
        return list(args.texts)
    if args.input and args.input != "-":
        if not os.path.isfile(args.input):
            raise CliError(f"input file {args.input} does not exist")
        with open(args.input, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    return [line.rstrip("\n") for line in sys.stdin]


def _text_generator(path: str, args):
    """The model at `path` as a `TextGenerator`, with the decoding flags given (a checkpoint's export would
    write the same: cased and spaced from the source when its tokenizer is uncased)."""
    options = generation_options(args)
    if kind_of(path) == "savedmodel":
        with as_flags(num_beams="--num-beams"):
            return SavedModelTexts(path, **options)
    model, tokenizer, defaults = load_model_and_tokenizer(path, args.spm, args.vocab)
    defaults.pop("max_input_length", None)
    return CheckpointTexts(model, tokenizer, **{**{k: v for k, v in defaults.items() if v is not None}, **options})


def cmd_generate(args):
    texts = _read_texts(args)
    generator = _text_generator(args.model or default_model_dir(), args)
    outputs = (line.replace("\n", " ") for line in generate_in_order(generator, texts, args.batch_size, True))
    if args.output:
        with atomic_file(args.output) as f:  # all or nothing: a failed batch leaves no partial file
            f.writelines(line + "\n" for line in outputs)
        print(args.output)
    else:
        for line in outputs:
            print(line, flush=True)


def cmd_export(args):
    if kind_of(args.model) == "savedmodel":
        # Written again in another storage or mode: with the decoding, tokenizer, truecasing and copy
        # restriction it was exported with, unless a flag says otherwise.
        model, tokenizer, options = load_export(args.model)
        if args.max_new_tokens is not None:
            options.pop("max_length")
        if not args.xla:  # graph mode runs any shape
            options.pop("row_buckets", None), options.pop("width_buckets", None)
        elif args.max_input_length:  # the recorded width buckets end at the recorded length
            options.pop("width_buckets", None)
    else:
        model, tokenizer, defaults = load_model_and_tokenizer(args.model, args.spm, args.vocab, args.num_heads)
        options = {k: v for k, v in defaults.items() if v is not None}
        options.setdefault("max_new_tokens", 64)
    options.update(generation_options(args))
    if args.length_penalty_style:
        options["length_penalty_style"] = args.length_penalty_style
    if args.max_input_length:
        options["max_input_length"] = args.max_input_length
    for name in ("row_buckets", "width_buckets"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.no_request_batching:
        options["batch_timeout_micros"] = None
    elif args.batch_timeout_micros is not None:
        options["batch_timeout_micros"] = args.batch_timeout_micros
    out = next_version_dir(args.out) if args.version == "auto" else args.out
    with as_flags(row_buckets="--row-buckets", width_buckets="--width-buckets", jit_compile="--xla"):
        export_saved_model(model, tokenizer, out, jit_compile=args.xla, weights_dtype=args.weights_dtype, **options)
    print(out)


def int_list(value: str) -> list[int]:
    """argparse type: "1,4,32" -> [1, 4, 32]."""
    try:
        return [int(part) for part in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {value!r}") from None


def cmd_warm_cache(args):
    if kind_of(args.export) != "savedmodel":
        raise CliError(f"{args.export} is not an exported SavedModel")
    if not read_export_info(args.export)["jit_compile"]:
        raise CliError(f"{args.export} is a graph-mode export: it compiles nothing (export with --xla)")
    count = warm_cache(args.export, args.cache)
    print(f"{args.cache}: {count} files; serve with TF_XLA_FLAGS={CACHE_FLAG}={os.path.abspath(args.cache)}",
          file=sys.stderr)
    print(args.cache)


def cmd_convert(args):
    if kind_of(args.source) == "tfhub":
        tfhub.convert_module(args.source, args.out, num_heads=args.num_heads, spm_model=args.spm,
                             vocab_file=args.vocab)
    else:
        model, tokenizer, _ = load_model_and_tokenizer(args.source, args.spm, args.vocab)
        model.save_pretrained(args.out, tokenizer=tokenizer)
    print(args.out)


def _size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def cmd_info(args):
    path = args.path
    kind = kind_of(path)
    report = {"path": path, "kind": kind}
    if os.path.isdir(path):
        report["size_bytes"] = _size(path)
    if kind == "savedmodel":
        report["signatures"] = saved_models.describe_signatures(path)
        try:
            report["export"] = read_export_info(path)
        except FileNotFoundError:
            pass
    elif kind == "checkpoint":
        report["config"] = read_config_json(os.path.join(path, "config.json"))
        report["files"] = sorted(os.listdir(path))
    else:
        model, tokenizer, defaults = load_model_and_tokenizer(path)
        report["decoding_defaults"] = defaults
        report["config"] = model.config.to_dict()
        report["tokenizer"] = repr(tokenizer)
        report["parameters"] = model.count_params()
    print(json.dumps(report, indent=2, default=str))


def add_commands(commands):
    """Registers generate, export, convert and info on the `tf-bert-seqgen` sub-command parser."""
    def tokenizer_files(p):
        p.add_argument("--spm", help="spiece.model to use when the source has no tokenizer")
        p.add_argument("--vocab", help="WordPiece vocab.txt to use when the source has no tokenizer")

    p = commands.add_parser("generate", help="generate text for each input line or argument")
    p.add_argument("texts", nargs="*", help="input texts (else --input FILE, else stdin)")
    p.add_argument("--model", help="SavedModel, checkpoint directory, HF repo id or TF Hub module "
                                   "(default: the shipped fusion model)")
    p.add_argument("--input", help="file with one input per line ('-' for stdin)")
    p.add_argument("--output", help="write the generated texts to this file, one per line (written whole, "
                                    "or not at all), instead of stdout; prints its path")
    p.add_argument("--batch-size", type=int, default=16, help="texts per batch (a progress bar on stderr "
                                                                "when there is more than one)")
    add_decoding_flags(p)
    tokenizer_files(p)
    p.set_defaults(func=cmd_generate)

    p = commands.add_parser("export", help="export a SavedModel (strings in, strings out) for TF Serving")
    p.add_argument("model", help="checkpoint directory, HF repo id, TF Hub module/handle, or an export to write "
                                 "again (its decoding, tokenizer and truecasing kept)")
    p.add_argument("--out", required=True, help="export directory (with --version auto: the model's base dir)")
    p.add_argument("--version", choices=["auto", "none"], default="none",
                   help="auto: write OUT/<next version number> (TF Serving layout)")
    p.add_argument("--xla", action="store_true", help="compile the decode loop with XLA")
    p.add_argument("--weights-dtype", choices=[d for d in WEIGHTS_DTYPES if d != "float32"],
                   help="store the matrices in fewer bytes: float16 (graph mode; half the size, cast back once "
                        "per request), bfloat16 or int8 (with --xla: half or a quarter of the bytes each decode "
                        "step reads; product forms measured on this CPU)")
    p.add_argument("--max-input-length", type=int)
    p.add_argument("--length-penalty-style", choices=["hf", "gnmt"])
    p.add_argument("--num-heads", type=int, help="attention heads, for TF Hub modules without a preset")
    p.add_argument("--batch-timeout-micros", type=int,
                   help="how long a call of a text signature waits for concurrent calls to batch with "
                        f"(default {DEFAULT_BATCH_TIMEOUT_MICROS}, or what a re-exported SavedModel recorded)")
    p.add_argument("--row-buckets", type=int_list, metavar="N,N,...",
                   help="with --xla: the row counts a call is padded to, ending at 32 (default 1,2,4,8,16,32); "
                        "one program per row and width bucket, each compiled or loaded at every start")
    p.add_argument("--width-buckets", type=int_list, metavar="N,N,...",
                   help="with --xla: the source widths (tokens) a text is padded to, ending at the max input "
                        "length (default 16,32,64,... ); fewer buckets start faster and pad more")
    p.add_argument("--no-request-batching", action="store_true",
                   help="leave concurrent calls unbatched (a server that batches requests itself)")
    add_decoding_flags(p)
    tokenizer_files(p)
    p.set_defaults(func=cmd_export)

    p = commands.add_parser("warm-cache", help="compile an --xla export's programs into TF's persistent XLA cache, "
                                                "ahead of serving")
    p.add_argument("export", help="an exported SavedModel (jit_compile=True)")
    p.add_argument("--cache", required=True, help="the cache directory; serve with TF_XLA_FLAGS="
                                                  f"{CACHE_FLAG}=<this directory>")
    p.set_defaults(func=cmd_warm_cache)

    p = commands.add_parser("convert", help="convert any supported checkpoint to our (HF-compatible) format")
    p.add_argument("source", help="HF directory or repo id, or TF Hub module/handle")
    p.add_argument("--out", required=True)
    p.add_argument("--num-heads", type=int)
    tokenizer_files(p)
    p.set_defaults(func=cmd_convert)

    p = commands.add_parser("info", help="what a model directory or SavedModel holds")
    p.add_argument("path")
    p.set_defaults(func=cmd_info)
