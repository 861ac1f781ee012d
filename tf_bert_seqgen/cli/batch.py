"""`batch`: generate for every line of many files on Apache Beam (DirectRunner here, any runner by flags)."""

from __future__ import annotations

import logging
import os
import sys

from tf_bert_seqgen.cli.errors import CliError, as_flags
from tf_bert_seqgen.cli.sources import default_model_dir

BEAM_MISSING = 'the batch command needs Apache Beam: pip install "tf_bert_seqgen[beam]"'


def _no_files(pattern: str) -> bool:
    from apache_beam.io.filesystems import FileSystems

    try:
        return not FileSystems.match([pattern])[0].metadata_list
    except Exception:  # Beam raises for a pattern that names no file system path at all
        return True


def _absolute(path: str) -> str:
    """A local path made absolute (Beam matches no relative pattern without a directory, like 'corpus.*');
    a URL (gs://...) as it is."""
    return path if "://" in path else os.path.abspath(path)


def _pipeline_options(pipeline_args: list[str], quiet: bool):
    """Beam's PipelineOptions from the flags this command does not know; an unknown one is an error."""
    from apache_beam.options.pipeline_options import PipelineOptions

    if quiet:  # Beam's notes off, here and in the workers (which start after this)
        logging.getLogger("apache_beam").setLevel(logging.ERROR)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        pipeline_args = ["--default_sdk_harness_log_level=ERROR", *pipeline_args]  # a later one wins
    options = PipelineOptions(pipeline_args)
    unknown = options.get_all_options(retain_unknown_options=True).keys() - options.get_all_options().keys()
    if unknown:  # Beam would only log a warning and run without them
        raise CliError(f"unknown option(s) {', '.join('--' + name for name in sorted(unknown))} (neither this "
                       "command's nor a Beam pipeline option)")
    return options


def cmd_batch(args):
    if not args.tensorflow_logs:
        logging.disable(logging.WARNING)  # Beam's import-time note on optional GCP clients
    try:
        # apache_beam is the optional [beam] extra: imported only when this command runs.
        import apache_beam as beam

        from tf_bert_seqgen import batch_inference as beam_inference
    except ImportError as e:
        raise CliError(BEAM_MISSING) from e
    finally:
        logging.disable(logging.NOTSET)
    with as_flags(min_batch_size="--min-batch-size", max_batch_size="--max-batch-size"):
        generate = beam_inference.GenerateText(
            args.model or default_model_dir(), args.signature, min_batch_size=args.min_batch_size,
            max_batch_size=args.max_batch_size, sort_by_length=not args.no_sorting, large_model=args.large_model)
    pattern, prefix = _absolute(args.input), _absolute(args.output)
    if _no_files(pattern):
        raise CliError(f"no input files match {args.input}")
    if not _no_files(f"{prefix}-*.jsonl"):
        raise CliError(f"{args.output}-*.jsonl already exist; remove them or choose another --output")
    pipeline = beam.Pipeline(options=_pipeline_options(args.pipeline_args, quiet=not args.tensorflow_logs))

    texts, unreadable = pipeline | "Read" >> beam_inference.ReadTexts(pattern)
    generated, errors = texts | "Generate" >> generate
    _ = generated | "WriteGenerated" >> beam_inference.WriteJsonl(prefix)
    # Not -SSSSS-of-NNNNN: Beam clears PREFIX-*-of-NNNNN.jsonl before it renames the outputs into place.
    _ = ((errors, unreadable) | "AllErrors" >> beam.Flatten()
         | "WriteErrors" >> beam_inference.WriteJsonl(f"{prefix}-errors", shard_name_template="-SSSSS"))
    result = pipeline.run()
    result.wait_until_finish()

    counts = beam_inference.text_counters(result)
    done, failed, unreadable = (counts.get(k, 0) for k in ("texts_done", "texts_failed", "lines_unreadable"))
    print(f"{done + failed + unreadable} records: {done} generated, {failed + unreadable} failed, of which "
          f"{unreadable} unreadable", file=sys.stderr)
    print(f"{args.output}-SSSSS-of-NNNNN.jsonl")
    print(f"{args.output}-errors-SSSSS.jsonl")


def add_commands(commands):
    """Registers `batch` on the `tf-bert-seqgen` sub-command parser."""
    p = commands.add_parser(
        "batch", help="generate for every line of many files on Apache Beam (the [beam] extra)",
        description="Generate for every line of the input files on Apache Beam. Flags this command does not "
                    "know are Beam pipeline options (--runner, --direct_num_workers, --project, ...); the "
                    "runner defaults to DirectRunner.")
    p.add_argument("--model", help="exported SavedModel (default: the shipped fusion model)")
    p.add_argument("--input", required=True, help='file pattern: .jsonl files hold {"id": ..., "text": ...} per '
                                                  "line, any other file one text per line (id <file name>:<line>)")
    p.add_argument("--output", required=True, help="output prefix: PREFIX-SSSSS-of-NNNNN.jsonl and "
                                                   "PREFIX-errors-SSSSS.jsonl")
    p.add_argument("--signature", default="serving_default", help="text signature to call")
    p.add_argument("--max-batch-size", type=int, default=32, help="most texts per model call")
    p.add_argument("--min-batch-size", type=int, default=1,
                   help="fewest texts per model call with --no-sorting (Beam adapts the size in between)")
    p.add_argument("--no-sorting", action="store_true", help="batch texts as they come, not sorted by length")
    p.add_argument("--large-model", action="store_true",
                   help="one copy of the model per machine, shared by its worker processes")
    p.set_defaults(func=cmd_batch, pipeline_args=[], accepts_pipeline_args=True)
    return p

