"""saved_models/models.config and saved_models/batching_parameters.txt: what tensorflow_model_server reads.

The model server parses both with the strict C++ TextFormat parser; google.protobuf.text_format.Parse is
as strict (an unknown field, a wrong type or a misspelt name fails). ModelServerConfig ships in
tensorflow-serving-api; BatchingParameters does not (it lives in session_bundle_config.proto, which the
wheel leaves out), so its descriptor is rebuilt below field for field from the upstream .proto.
"""

import os

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

SAVED_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "saved_models")
MODELS_CONFIG = os.path.join(SAVED_MODELS, "models.config")
BATCHING_PARAMETERS = os.path.join(SAVED_MODELS, "batching_parameters.txt")
# Where the documented `docker run -v "$PWD/saved_models:/models"` puts saved_models/.
MOUNT = "/models"


def _batching_parameters_class():
    """tensorflow.serving.BatchingParameters of tensorflow/serving 2.20.0 (unchanged on master), see
    tensorflow_serving/servables/tensorflow/session_bundle_config.proto."""
    F = descriptor_pb2.FieldDescriptorProto
    fields = [  # (name, number, type, wrapper message or None, repeated)
        ("max_batch_size", 1, F.TYPE_MESSAGE, "Int64Value", False),
        ("batch_timeout_micros", 2, F.TYPE_MESSAGE, "Int64Value", False),
        ("max_enqueued_batches", 3, F.TYPE_MESSAGE, "Int64Value", False),
        ("num_batch_threads", 4, F.TYPE_MESSAGE, "Int64Value", False),
        ("thread_pool_name", 5, F.TYPE_MESSAGE, "StringValue", False),
        ("enable_large_batch_splitting", 8, F.TYPE_MESSAGE, "BoolValue", False),
        ("max_execution_batch_size", 9, F.TYPE_MESSAGE, "Int64Value", False),
        ("allowed_batch_sizes", 6, F.TYPE_INT64, None, True),
        ("pad_variable_length_inputs", 7, F.TYPE_BOOL, None, False),
    ]
    file = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving", syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    message = file.message_type.add(name="BatchingParameters")
    for name, number, type_, wrapper, repeated in fields:
        message.field.add(name=name, number=number, type=type_,
                          type_name=f".google.protobuf.{wrapper}" if wrapper else None,
                          label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()  # private: never clashes with a registered copy
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParameters = _batching_parameters_class()


def _parse(path, message_class):
    with open(path) as f:
        return text_format.Parse(f.read(), message_class())


def _model_config():
    (config,) = _parse(MODELS_CONFIG, model_server_config_pb2.ModelServerConfig).model_config_list.config
    return config


def _served_version_dir(config):
    assert config.base_path.startswith(MOUNT + "/")
    base = os.path.join(SAVED_MODELS, os.path.relpath(config.base_path, MOUNT))
    versions = sorted(int(v) for v in os.listdir(base) if v.isdigit())
    assert versions, f"no numeric version directory under {base}"
    return os.path.join(base, str(versions[-1]))  # what the `latest` policy serves


def test_models_config_serves_the_shipped_fusion_model():
    config = _model_config()
    assert (config.name, config.base_path, config.model_platform) == ("fusion", "/models/fusion", "tensorflow")
    assert os.path.basename(config.base_path) == "fusion"
    assert config.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert config.model_version_policy.latest.num_versions == 1
    version_dir = _served_version_dir(config)
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
    assert os.path.isfile(os.path.join(version_dir, "variables", "variables.index"))


def test_batching_parameters_are_valid_for_tf_serving():
    params = _parse(BATCHING_PARAMETERS, BatchingParameters)
    # Every scheduling knob is set: an unset one silently takes the server's default.
    for field in ("max_batch_size", "batch_timeout_micros", "num_batch_threads", "max_enqueued_batches"):
        assert params.HasField(field), field
    assert params.max_batch_size.value >= 1 and params.num_batch_threads.value >= 1
    assert params.max_enqueued_batches.value >= 1
    assert 0 < params.batch_timeout_micros.value <= 10_000  # the guide's 1-10 ms range for CPU
    sizes = list(params.allowed_batch_sizes)
    assert sizes and sizes[0] >= 1
    assert sizes == sorted(set(sizes)), f"allowed_batch_sizes must increase: {sizes}"
    # WrapSessionForBatching refuses to load the model otherwise (no large-batch splitting here).
    assert not params.enable_large_batch_splitting.value
    assert sizes[-1] == params.max_batch_size.value


def test_batched_signatures_fit_the_batching_session():
    """With --enable_batching every request goes through the BatchingSession: each input and output must
    have a batch dimension 0, a request may not hold more rows than max_batch_size, and without padding
    requests only concatenate when their other dimensions are fixed. A warm-up request that fails makes
    the model fail to load, so every warm-up signature (and serving_default) is checked."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow_serving.apis import prediction_log_pb2

    params = _parse(BATCHING_PARAMETERS, BatchingParameters)
    version_dir = _served_version_dir(_model_config())
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    (meta_graph,) = [m for m in saved_model.meta_graphs if list(m.meta_info_def.tags) == ["serve"]]
    signatures = meta_graph.signature_def

    warmup = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
    requests = [prediction_log_pb2.PredictionLog.FromString(r.numpy()).predict_log.request
                for r in tf.data.TFRecordDataset(warmup)]
    assert requests
    for request in requests:
        for tensor in request.inputs.values():
            assert 1 <= tensor.tensor_shape.dim[0].size <= params.max_batch_size.value

    for name in {"serving_default"} | {r.model_spec.signature_name or "serving_default" for r in requests}:
        signature = signatures[name]
        for kind, tensors in (("input", signature.inputs), ("output", signature.outputs)):
            for key, info in tensors.items():
                dims = [d.size for d in info.tensor_shape.dim]
                assert not info.tensor_shape.unknown_rank and dims and dims[0] == -1, (name, kind, key, dims)
                if kind == "input" and not params.pad_variable_length_inputs:
                    assert -1 not in dims[1:], (name, key, dims)


def test_headers_give_the_server_command_line():
    for path in (MODELS_CONFIG, BATCHING_PARAMETERS):
        with open(path) as f:
            header = "".join(line for line in f if line.startswith("#"))
        for flag in (f"--model_config_file={MOUNT}/models.config", "--enable_batching",
                     f"--batching_parameters_file={MOUNT}/batching_parameters.txt", "--rest_api_port=8501",
                     "--xla_cpu_compilation_enabled=true", f'-v "$PWD/saved_models:{MOUNT}"'):
            assert flag in header, (path, flag)


@pytest.mark.parametrize("path, message_class", [(MODELS_CONFIG, model_server_config_pb2.ModelServerConfig),
                                                 (BATCHING_PARAMETERS, BatchingParameters)])
def test_parser_is_strict(tmp_path, path, message_class):
    with open(path) as f:
        text = f.read()
    broken = tmp_path / os.path.basename(path)
    broken.write_text(text + "\nmax_batch_sizes { value: 32 }\n")  # a misspelt field
    with pytest.raises(text_format.ParseError, match="max_batch_sizes"):
        _parse(broken, message_class)
