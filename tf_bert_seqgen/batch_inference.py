"""Batch inference on Apache Beam: RunInference over an exported SavedModel (the optional `[beam]` extra).

    import apache_beam as beam
    from tf_bert_seqgen.batch_inference import GenerateText

    with beam.Pipeline() as p:
        generated, errors = (p | beam.Create([("a", "It rains. We stay in.")])
                             | GenerateText("saved_models/fusion/5"))

`GenerateText` takes (key, text) pairs and returns two PCollections of JSON-ready dicts: `generated`,
{"id": key, "text": text, "generated_text": ...} for each text the model ran on, and `errors`,
{"id": key, "error": "Type: message"} (plus "text" where the text could be read) for each record that
failed: not a string, not valid UTF-8, or an error inside the model. Every input comes out exactly once,
on one side or the other, so one bad record never stops the pipeline.

Beam's built-in TF model handlers do not fit this export: they load with `tf.keras.models.load_model`,
which Keras 3 refuses for a plain tf.Module SavedModel (apache/beam#30616), and call `model(batch)`
rather than a signature. `SavedModelTextHandler` runs a text signature through the package's front end
(`text_generators.SavedModelTexts`: `tf.saved_model.load`, the signature checked from saved_model.pb); batching, sorting by length, one model copy per machine (`large_model`), keyed inputs and the
dead-letter outputs are Beam's own (ModelHandler, SortAndBatchElements / BatchElements,
KeyedModelHandler, with_exception_handling).

(The module was `tf_bert_seqgen.beam` until 2026-12-07; that name still imports, with a warning.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference
from apache_beam.transforms.util import SortAndBatchElements

from tf_bert_seqgen.saved_models import text_signature
from tf_bert_seqgen.text_generators import SavedModelTexts

METRICS_NAMESPACE = "tf_bert_seqgen"
# Rows per model call: the export's own default slice (a larger call runs in slices of 32 inside the graph).
DEFAULT_MAX_BATCH_SIZE = 32


class SavedModelTextHandler(ModelHandler[bytes, PredictionResult, SavedModelTexts]):
    """RunInference's handler for an exported SavedModel: UTF-8 texts in, PredictionResults out.

    `inference` is the generated text (bytes), or the exception the model raised for that text alone: a
    failing batch is run again one text at a time, so that one bad text does not fail its neighbours
    (GenerateText sends those texts to its errors; elsewhere, check for exceptions).

    Args:
        model_dir: str. The exported SavedModel (a local path or any file system TensorFlow reads).
        signature: str. A signature with one string [batch] input and one string [batch] output.
        min_batch_size: int. Lower bound of Beam's adaptive batch size.
        max_batch_size: int. Upper bound (the export's slice size, 32, by default).
        large_model: bool. One copy of the model per machine, shared by its worker processes.
        model_copies: int or None. That many copies per machine instead (implies sharing).

    Raises:
        FileNotFoundError: `model_dir` is not a SavedModel.
        ValueError: no such signature, not a text signature, or batch sizes out of order; all raised when
            the pipeline is built, not on the workers.
    """

    def __init__(self, model_dir: str, signature: str = "serving_default", *, min_batch_size: int = 1,
                 max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, large_model: bool = False,
                 model_copies: int | None = None):
        if not 1 <= min_batch_size <= max_batch_size:
            raise ValueError(f"need 1 <= min_batch_size <= max_batch_size, got {min_batch_size} and {max_batch_size}")
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size, large_model=large_model,
                         model_copies=model_copies)
        self.model_dir = model_dir
        self.signature = signature
        self._input, self._output = text_signature(model_dir, signature)

    def load_model(self) -> SavedModelTexts:
        # With large_model, one copy per machine: the workers call generate_bytes through a proxy.
        return SavedModelTexts(self.model_dir, self.signature)

    def run_inference(self, batch: Sequence[bytes], model: SavedModelTexts, inference_args=None):
        try:
            outputs = model.generate_bytes(list(batch))
        except Exception as e:  # one bad text fails its batch: find it by running each text alone
            outputs = [e] if len(batch) == 1 else [_alone(model, text) for text in batch]
        return [PredictionResult(text, output) for text, output in zip(batch, outputs, strict=True)]

    def get_num_bytes(self, batch: Sequence[bytes]) -> int:
        return sum(len(text) for text in batch)

    def __repr__(self):
        return f"SavedModelTextHandler({self.model_dir!r}, {self.signature!r})"


def _alone(model: SavedModelTexts, text: bytes):
    try:
        return model.generate_bytes([text])[0]
    except Exception as e:
        return e


# -- GenerateText -----------------------------------------------------------------------------------------

def _count(name: str):
    return beam.metrics.Metrics.counter(METRICS_NAMESPACE, name)


def _utf8(record):
    """(key, text) -> (key, UTF-8 bytes); a text that is not a str or UTF-8 bytes raises, which sends the
    record to the errors."""
    _count("texts_in").inc()
    key, text = record
    if isinstance(text, str):
        try:
            return key, text.encode("utf-8")
        except UnicodeEncodeError as e:  # a lone surrogate, e.g. from a JSON "\ud800"
            raise ValueError(f"text is not valid Unicode ({e.reason} at character {e.start})") from None
    if isinstance(text, bytes):
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"text is not valid UTF-8 ({e.reason} at byte {e.start})") from None
        return key, text
    raise TypeError(f"text must be a string, got {type(text).__name__}")


def text_length(keyed_text) -> int:
    """A (key, UTF-8 text) pair's sorting length: the text's size in bytes."""
    return len(keyed_text[1])


def _generated(keyed_result):
    """(key, PredictionResult) -> the output record; a text the model failed on raises its error."""
    key, result = keyed_result
    if isinstance(result.inference, BaseException):
        raise result.inference
    _count("texts_done").inc()
    return {"id": key, "text": result.example.decode("utf-8"), "generated_text": result.inference.decode("utf-8")}


def _readable(text) -> str | None:
    """`text` as a str that a UTF-8 file can hold, else None."""
    try:
        if isinstance(text, bytes):
            return text.decode("utf-8")
        if isinstance(text, str):
            text.encode("utf-8")  # a JSON "\ud800" decodes to a str that no UTF-8 file can hold
            return text
    except UnicodeError:
        pass
    return None


def error_message(exception_info) -> str:
    """Beam's dead-letter (exception type, repr, traceback lines) -> one line, "Type: message".

    TensorFlow's op errors wrap their message in graph details ("Graph execution error:", "Detected at
    node ...", "[[{{node ...}}]]"); only the message's own lines are kept.
    """
    exception_type, _, traceback_lines = exception_info
    _, colon, message = (traceback_lines[-1] if traceback_lines else "").partition(": ")
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[")
    kept = [line.strip() for line in message.splitlines() if line.strip() and not line.strip().startswith(noise)]
    return f"{exception_type.__name__}: {' '.join(kept)}" if colon else exception_type.__name__


def error_record(key, text, exception_info) -> dict:
    """{"id", "error"} plus "text" where the text is readable."""
    record = {"id": key, "error": error_message(exception_info)}
    readable = _readable(text)
    if readable is not None:
        record["text"] = readable
    return record


def _failed_record(failure):
    """A dead-letter (record, exception info) -> its error record; the record is (key, text) or, after
    inference, (key, PredictionResult)."""
    (key, value), exception_info = failure
    _count("texts_failed").inc()
    return error_record(key, value.example if isinstance(value, PredictionResult) else value, exception_info)


def _failed_batch(failure):
    """A dead-letter (batch, exception info) of inference -> one error record per text of the batch."""
    batch, exception_info = failure
    _count("texts_failed").inc(len(batch))
    return [error_record(key, text, exception_info) for key, text in batch]


class GenerateText(beam.PTransform):
    """(key, text) pairs -> (generated, errors), two PCollections of dicts (see the module docstring).

    Texts are str or UTF-8 bytes. With `sort_by_length` (the default) each bundle's texts are sorted by
    length before they are cut into batches (Beam's SortAndBatchElements), so that short and long texts are
    not padded together (a batch pads to its longest text); `max_batch_bytes` also caps a batch's total
    bytes. Without it, Beam's BatchElements batches texts as they come, between the batch sizes. The other
    arguments are SavedModelTextHandler's. Beam counters in the "tf_bert_seqgen" namespace: texts_in =
    texts_done + texts_failed (`text_counters` reads them).

    Args:
        model_dir: str. The exported SavedModel.
        signature: str. A text signature.
        min_batch_size: int. As `SavedModelTextHandler`.
        max_batch_size: int. As `SavedModelTextHandler`.
        max_batch_bytes: int or None. Cap on a batch's total text bytes (with `sort_by_length`).
        sort_by_length: bool. Sort each bundle's texts by length before batching.
        large_model: bool. As `SavedModelTextHandler`.
        model_copies: int or None. As `SavedModelTextHandler`.

    Returns:
        Applied to a PCollection of (key, text): (generated, errors), PCollections of
        `{"id", "text", "generated_text"}` and of `{"id", "error"}` (plus `"text"` where readable) dicts;
        each input is in exactly one of them.

    Raises:
        FileNotFoundError: as `SavedModelTextHandler`.
        ValueError: as `SavedModelTextHandler`.
    """

    def __init__(self, model_dir: str, signature: str = "serving_default", *, min_batch_size: int = 1,
                 max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, max_batch_bytes: int | None = None,
                 sort_by_length: bool = True, large_model: bool = False, model_copies: int | None = None):
        super().__init__()
        self.handler = SavedModelTextHandler(model_dir, signature, min_batch_size=min_batch_size,
                                             max_batch_size=max_batch_size, large_model=large_model,
                                             model_copies=model_copies)
        self.batching = None
        if sort_by_length:
            self.batching = SortAndBatchElements(min_batch_size, max_batch_size, max_batch_bytes or 2 ** 62,
                                                 element_size_fn=text_length)

    def expand(self, keyed_texts):
        texts, unusable = keyed_texts | "Check" >> beam.Map(_utf8).with_exception_handling()
        handler = KeyedModelHandler(self.handler)
        if self.batching is not None:
            texts |= "SortAndBatch" >> self.batching
            handler = handler.with_no_batching()
        generated, failed = texts | "RunInference" >> RunInference(
            handler.with_postprocess_fn(_generated)).with_exception_handling()
        errors = [unusable | "Unusable" >> beam.Map(_failed_record),
                  failed.failed_inferences | "FailedBatches" >> beam.FlatMap(_failed_batch)]
        for i, failures in enumerate([*failed.failed_preprocessing, *failed.failed_postprocessing]):
            errors.append(failures | f"Failed{i}" >> beam.Map(_failed_record))
        return generated, errors | "Errors" >> beam.Flatten()


def text_counters(result) -> dict[str, int]:
    """The committed "tf_bert_seqgen" counters of a finished pipeline, by name.

    Args:
        result: the `PipelineResult` of `pipeline.run()`, finished.

    Returns:
        {counter name: value}: texts_in, texts_done, texts_failed, lines_unreadable (those that counted).
    """
    query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(METRICS_NAMESPACE))
    counters = {}
    for counter in query["counters"]:
        name = counter.key.metric.name
        counters[name] = counters.get(name, 0) + counter.committed
    return counters


# -- Files: .txt / .jsonl in, JSON lines out ---------------------------------------------------------------

def _numbered_lines(readable_file):
    """A matched file -> (file name, line number from 1, line bytes without its end, is JSONL)."""
    name = os.path.basename(readable_file.metadata.path)
    is_jsonl = ".jsonl" in name.lower()
    with readable_file.open(mime_type="application/octet-stream") as f:
        for number, line in enumerate(f, start=1):
            yield name, number, line.rstrip(b"\r\n"), is_jsonl


def _parsed(numbered_line):
    """A numbered line -> [(id, text)]: a .txt line is a text with id "<file name>:<line number>", a .jsonl
    line is {"id": ..., "text": ...} (id defaults to the same); blank .jsonl lines are skipped. An
    unreadable line raises, which sends it to the errors."""
    name, number, line, is_jsonl = numbered_line
    key = f"{name}:{number}"
    if not is_jsonl:
        return [(key, line)]
    if not line.strip():
        return []
    record = json.loads(line)
    if not isinstance(record, dict) or "text" not in record:
        raise ValueError('a .jsonl line must be an object {"id": ..., "text": ...}')
    key, text = record.get("id", key), record["text"]
    # Beam's coders write a str as UTF-8, so a str holding a lone surrogate (a JSON "\ud800") would fail the
    # pipeline: a text goes on as bytes (GenerateText refuses those as invalid UTF-8), anything else is checked.
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    try:
        json.dumps([key, None if isinstance(text, bytes) else text], ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"line is not valid Unicode ({e.reason})") from None
    return [(key, text)]


def _unreadable_line(failure):
    (name, number, _, _), exception_info = failure
    _count("lines_unreadable").inc()
    return error_record(f"{name}:{number}", None, exception_info)


class ReadTexts(beam.PTransform):
    """A file pattern -> (texts, errors): (id, text) pairs, and error records for unreadable lines.

    Files whose name holds ".jsonl" are JSON lines, any other one text per line (read as bytes, so that
    invalid UTF-8 is one record's error, not the pipeline's); compressed files (.gz, ...) are read as such.
    Each file is read whole by one worker (line numbers need that), then its lines are spread out.
    Counter: lines_unreadable.

    Args:
        file_pattern: str. Files Beam matches (local, gs://, ...); a `.jsonl` line is
            `{"id": ..., "text": ...}` (the id defaults to `<file name>:<line number>`), any other line a
            text with that id.

    Returns:
        Applied to a pipeline: (texts, errors), PCollections of (id, text) pairs and of error records.
    """

    def __init__(self, file_pattern: str):
        super().__init__()
        self.file_pattern = file_pattern

    def expand(self, pbegin):
        lines = (pbegin | "Match" >> fileio.MatchFiles(self.file_pattern) | "Open" >> fileio.ReadMatches()
                 | "Lines" >> beam.FlatMap(_numbered_lines) | "Spread" >> beam.Reshuffle())
        texts, unreadable = lines | "Parse" >> beam.FlatMap(_parsed).with_exception_handling()
        return texts, unreadable | "Unreadable" >> beam.Map(_unreadable_line)


def _json_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)


class WriteJsonl(beam.PTransform):
    """Dicts -> JSON-lines files PREFIX<shard_name_template>.jsonl; Beam's default template gives
    PREFIX-SSSSS-of-NNNNN.jsonl. Beam writes them aside and renames them once all are written.

    Args:
        prefix: str. The output prefix (a path or any file system Beam writes).
        shard_name_template: str or None. Beam's shard name template; None: its default.
    """

    def __init__(self, prefix: str, shard_name_template: str | None = None):
        super().__init__()
        self.prefix = prefix
        self.shard_name_template = shard_name_template

    def expand(self, records):
        return (records | "Json" >> beam.Map(_json_line)
                | "Write" >> beam.io.WriteToText(self.prefix, file_name_suffix=".jsonl",
                                                 shard_name_template=self.shard_name_template))
