"""`tf-bert-seqgen`: generate, export, convert, info, finetune, evaluate.

Errors are one line on stderr and exit code 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

DEFAULT_MODEL_NAME = "fusion"


def default_model_dir() -> str:
    """The shipped default model: the newest version under saved_models/fusion (repo checkout)."""
    from tf_bert_seqgen.export import latest_version_dir

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "saved_models",
                        DEFAULT_MODEL_NAME)
    found = latest_version_dir(root)
    if found is None:
        raise FileNotFoundError(f"no default model under {root}; pass --model")
    return found


class CliError(Exception):
    """A user-facing problem: printed as one line."""


# --- what a path holds --------------------------------------------------------------------------------

def kind_of(path: str) -> str:
    """'savedmodel', 'tfhub', 'checkpoint' (our / HF directory) or 'hub-name' (HF repo id or TF Hub handle)."""
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "tfhub_module.pb")):
            return "tfhub"
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return "savedmodel"
        if os.path.isfile(os.path.join(path, "config.json")):
            return "checkpoint"
        raise CliError(f"{path} is neither a SavedModel, a TF Hub module nor a checkpoint directory "
                       "(no saved_model.pb, tfhub_module.pb or config.json)")
    if os.path.exists(path):
        raise CliError(f"{path} is a file; expected a model directory")
    if path.startswith(("http://", "https://")) or "tfhub.dev" in path or path.startswith("google/bertseq2seq"):
        return "tfhub"
    return "hub-name"


def load_model_and_tokenizer(path: str, spm=None, vocab=None, num_heads=None):
    """(model, tokenizer, decoding defaults) from any supported source.

    Decoding defaults come from the release's preset: a TF Hub module's (matched by handle), or the
    `preset.json` that `convert` writes beside a converted checkpoint; none for other checkpoints.
    """
    from tf_bert_seqgen import EncoderDecoder
    from tf_bert_seqgen.checkpoints import hf
    from tf_bert_seqgen.tokenizers import load_tokenizer

    kind = kind_of(path)
    if kind == "savedmodel":
        raise CliError(f"{path} is an exported SavedModel; this command needs a checkpoint or a TF Hub module")
    if kind == "tfhub":
        from tf_bert_seqgen.checkpoints import tfhub

        loaded = tfhub.load(path, num_heads=num_heads, spm_model=spm, vocab_file=vocab)
        return loaded.model, loaded.tokenizer, preset_decoding(tfhub.conversion_preset(loaded))
    directory = hf.resolve(path)
    model = EncoderDecoder.from_pretrained(directory)
    if spm or vocab:
        from tf_bert_seqgen.tokenizers import BertForSeqGenerationTokenizer, WordPieceTokenizer

        tokenizer = BertForSeqGenerationTokenizer(spm) if spm else WordPieceTokenizer(vocab)
    else:
        tokenizer = load_tokenizer(directory)
    defaults = {}
    preset_path = os.path.join(directory, "preset.json")
    if os.path.isfile(preset_path):
        from tf_bert_seqgen.presets import Preset

        with open(preset_path, encoding="utf-8") as f:
            defaults = preset_decoding(Preset(**json.load(f)))
    return model, tokenizer, defaults


def preset_decoding(preset) -> dict:
    return {"num_beams": preset.num_beams, "length_penalty": preset.length_penalty,
            "length_penalty_style": preset.length_penalty_style,
            "max_new_tokens": preset.max_output_length or None, "max_input_length": preset.max_input_length}


def generation_options(args) -> dict:
    options = {"num_beams": args.num_beams, "max_new_tokens": args.max_new_tokens,
               "length_penalty": args.length_penalty}
    return {k: v for k, v in options.items() if v is not None}


# --- commands -----------------------------------------------------------------------------------------

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


def _savedmodel_generator(path, options):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tokenizer ops

    loaded = tf.saved_model.load(path)
    if options:
        signature = loaded.signatures["generate_with_options"]
        if "num_beams" in options:
            raise CliError("--num-beams is fixed when a SavedModel is exported; re-export to change it")
        info = _export_info(path)
        max_new = options.get("max_new_tokens", info["generation"]["max_length"] - 1)
        penalty = options.get("length_penalty", info["generation"]["length_penalty"])

        def run(batch):
            return signature(text=tf.constant(batch), max_new_tokens=tf.constant(max_new, tf.int32),
                             length_penalty=tf.constant(penalty, tf.float32))["generated_text"]
    else:
        signature = loaded.signatures["serving_default"]

        def run(batch):
            return signature(text=tf.constant(batch))["generated_text"]
    return lambda batch: [t.decode("utf-8") for t in run(batch).numpy()]


def _checkpoint_generator(path, options, args):
    model, tokenizer, defaults = load_model_and_tokenizer(path, args.spm, args.vocab)
    defaults.pop("max_input_length", None)
    options = {**{k: v for k, v in defaults.items() if v is not None}, **options}

    def run(batch):
        inputs = tokenizer(batch)
        ids = model.generate(inputs["input_ids"], inputs["attention_mask"], **options).numpy()
        # Column 0 is the decoder start token; the text ends at eos, as the exported model's does.
        return tokenizer.decode(ids[:, 1:], skip_special_tokens=True, stop_at_eos=True)
    return run


def cmd_generate(args):
    from tqdm import tqdm

    path = args.model or default_model_dir()
    texts = _read_texts(args)
    options = generation_options(args)
    kind = kind_of(path)
    run = _savedmodel_generator(path, options) if kind == "savedmodel" else _checkpoint_generator(path, options, args)
    batches = range(0, len(texts), args.batch_size)
    show_progress = not args.texts and len(texts) > args.batch_size
    for start in tqdm(batches, disable=not show_progress, unit="batch", file=sys.stderr):
        for line in run(texts[start:start + args.batch_size]):
            print(line.replace("\n", " "), flush=True)


def cmd_export(args):
    from tf_bert_seqgen.export import export_saved_model, next_version_dir

    model, tokenizer, defaults = load_model_and_tokenizer(args.model, args.spm, args.vocab, args.num_heads)
    out = next_version_dir(args.out) if args.version == "auto" else args.out
    options = {**{k: v for k, v in defaults.items() if v is not None}, **generation_options(args)}
    options.setdefault("max_new_tokens", 64)
    if args.length_penalty_style:
        options["length_penalty_style"] = args.length_penalty_style
    if args.max_input_length:
        options["max_input_length"] = args.max_input_length
    export_saved_model(model, tokenizer, out, jit_compile=args.xla, **options)
    print(out)


def cmd_convert(args):
    if kind_of(args.source) == "tfhub":
        from tf_bert_seqgen.checkpoints import tfhub

        tfhub.convert_module(args.source, args.out, num_heads=args.num_heads, spm_model=args.spm,
                             vocab_file=args.vocab)
    else:
        model, tokenizer, _ = load_model_and_tokenizer(args.source, args.spm, args.vocab)
        model.save_pretrained(args.out, tokenizer=tokenizer)
    print(args.out)


def _export_info(path):
    from tf_bert_seqgen.export import EXPORT_INFO_FILE

    info_path = os.path.join(path, EXPORT_INFO_FILE)
    if not os.path.isfile(info_path):
        raise CliError(f"{path} was not exported by tf_bert_seqgen ({EXPORT_INFO_FILE} missing)")
    with open(info_path, encoding="utf-8") as f:
        return json.load(f)


def _size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def cmd_info(args):
    path = args.path
    kind = kind_of(path)
    report = {"path": path, "kind": kind}
    if os.path.isdir(path):
        report["size_bytes"] = _size(path)
    if kind == "savedmodel":
        import tensorflow as tf
        import tensorflow_text  # noqa: F401

        loaded = tf.saved_model.load(path)
        report["signatures"] = {
            name: {"inputs": {k: f"{v.dtype.name}{v.shape}" for k, v in fn.structured_input_signature[1].items()},
                   "outputs": {k: f"{v.dtype.name}{v.shape}" for k, v in fn.structured_outputs.items()}}
            for name, fn in loaded.signatures.items()}
        try:
            report["export"] = _export_info(path)
        except CliError:
            pass
    elif kind == "checkpoint":
        from tf_bert_seqgen.config import read_config_json

        report["config"] = read_config_json(os.path.join(path, "config.json"))
        report["files"] = sorted(os.listdir(path))
    else:
        model, tokenizer, defaults = load_model_and_tokenizer(path)
        report["decoding_defaults"] = defaults
        report["config"] = model.config.to_dict()
        report["tokenizer"] = repr(tokenizer)
        report["parameters"] = model.count_params()
    print(json.dumps(report, indent=2, default=str))


def build_parser():
    parser = argparse.ArgumentParser(prog="tf-bert-seqgen", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    def decoding(p, beams=True):
        if beams:
            p.add_argument("--num-beams", type=int)
        p.add_argument("--max-new-tokens", type=int)
        p.add_argument("--length-penalty", type=float)

    def tokenizer_files(p):
        p.add_argument("--spm", help="spiece.model to use when the source has no tokenizer")
        p.add_argument("--vocab", help="WordPiece vocab.txt to use when the source has no tokenizer")

    p = commands.add_parser("generate", help="generate text for each input line or argument")
    p.add_argument("texts", nargs="*", help="input texts (else --input FILE, else stdin)")
    p.add_argument("--model", help="SavedModel, checkpoint directory, HF repo id or TF Hub module "
                                   "(default: the shipped fusion model)")
    p.add_argument("--input", help="file with one input per line ('-' for stdin)")
    p.add_argument("--batch-size", type=int, default=16)
    decoding(p)
    tokenizer_files(p)
    p.set_defaults(func=cmd_generate)

    p = commands.add_parser("export", help="export a SavedModel (strings in, strings out) for TF Serving")
    p.add_argument("model", help="checkpoint directory, HF repo id or TF Hub module/handle")
    p.add_argument("--out", required=True, help="export directory (with --version auto: the model's base dir)")
    p.add_argument("--version", choices=["auto", "none"], default="none",
                   help="auto: write OUT/<next version number> (TF Serving layout)")
    p.add_argument("--xla", action="store_true", help="compile the decode loop with XLA")
    p.add_argument("--max-input-length", type=int)
    p.add_argument("--length-penalty-style", choices=["hf", "gnmt"])
    p.add_argument("--num-heads", type=int, help="attention heads, for TF Hub modules without a preset")
    decoding(p)
    tokenizer_files(p)
    p.set_defaults(func=cmd_export)

    p = commands.add_parser("convert", help="convert any supported checkpoint to our (HF-compatible) format")
    p.add_argument("source", help="HF directory or repo id, or TF Hub module/handle")
    p.add_argument("--out", required=True)
    p.add_argument("--num-heads", type=int)
    tokenizer_files(p)
    p.set_defaults(func=cmd_convert)

    p = commands.add_parser("info", help="what a model directory or SavedModel holds")
    p.add_argument("path")
    p.set_defaults(func=cmd_info)

    from tf_bert_seqgen import training_cli

    training_cli.add_commands(commands)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args.func(args)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # the CLI's contract: one line, non-zero exit, no traceback
        if args.debug:
            raise
        message = "; ".join(line.strip() for line in str(e).strip().splitlines() if line.strip())
        print(f"tf-bert-seqgen {args.command}: error: {message or type(e).__name__}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
