"""Every private TensorFlow / tf-text / Keras access of the package (tf_bert_seqgen/_compat.py) still works.

A failure here after an upgrade names the private API that moved; fix `_compat.py`, nowhere else.
"""

import keras
import pytest
import tensorflow as tf

from tf_bert_seqgen import _compat


def _call(private_api, function, *args):
    try:
        return function(*args)
    except (AttributeError, ImportError, TypeError) as e:
        pytest.fail(f"private API {private_api} is gone or changed ({type(e).__name__}: {e}); update _compat.py")


def test_xla_context_is_seen_inside_jit_compile_only():
    inside = []

    @tf.function(jit_compile=True)
    def compiled(x):
        inside.append(_call("tf.__internal__.get_enclosing_xla_context", _compat.in_xla_context))
        return x + 1

    compiled(tf.constant(1))
    assert _call("tf.__internal__.get_enclosing_xla_context", _compat.in_xla_context) is False
    assert inside == [True]


def test_sentencepiece_op_wrappers():
    ops = _call("tensorflow_text.python.ops.sentencepiece_tokenizer.gen_sentencepiece_tokenizer",
                _compat.sentencepiece_ops)
    for name in ("sentencepiece_op", "sentencepiece_tokenize_op"):
        assert callable(getattr(ops, name, None)), f"gen_sentencepiece_tokenizer.{name} is gone; update _compat.py"


def _tiny_model():
    inputs = keras.Input((2,))
    return keras.Model(inputs, keras.layers.Dense(1)(inputs))


def test_distribute_strategy_of_a_model():
    assert _call("keras.Model._distribute_strategy", _compat.distribute_strategy_of, _tiny_model()) is None
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = _tiny_model()
    assert _call("keras.Model._distribute_strategy", _compat.distribute_strategy_of, model) is strategy


def test_multi_worker_mode():
    # A MultiWorkerMirroredStrategy cannot be made here without configuring the process's collectives;
    # the private method it calls must exist on its extended class.
    extended = tf.distribute.MultiWorkerMirroredStrategy.__init__.__globals__.get("CollectiveAllReduceExtended")
    assert extended is not None and callable(getattr(extended, "_in_multi_worker_mode", None)), (
        "tf.distribute.MultiWorkerMirroredStrategy().extended._in_multi_worker_mode is gone; update _compat.py")
    assert _compat.is_multi_worker(tf.distribute.get_strategy()) is False


def test_symbolic_build():
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    batch = (keras.KerasTensor((None, 2), "float32"), keras.KerasTensor((None, 1), "float32"))
    _call("keras.Model._symbolic_build", _compat.symbolic_build, model, batch)
    assert model.built


def test_all_reduce_sum_gradients():
    variable = tf.Variable([1.0, 2.0])
    optimizer = keras.optimizers.SGD()
    pairs = _call("keras Optimizer._all_reduce_sum_gradients", _compat.all_reduce_sum_gradients, optimizer,
                  [(tf.constant([0.5, 0.5]), variable)])
    (gradient, same), = list(pairs)
    assert same is variable and gradient.numpy().tolist() == [0.5, 0.5]


def test_overridden_keras_hooks_still_exist():
    missing = _compat.missing_overridden_hooks()
    assert not missing, f"Keras no longer has {missing}: our overrides would be skipped silently; update them"


def test_sublayers_reach_every_dense_once():
    from tf_bert_seqgen import BertForSeqGenerationConfig, EncoderDecoder, EncoderDecoderConfig, layers

    stack = BertForSeqGenerationConfig(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=16)
    model = EncoderDecoder.from_config(EncoderDecoderConfig(stack, stack, share=True))
    found = _call("keras.layers.Layer._flatten_layers", _compat.sublayers, model)
    dense = [layer for layer in found if isinstance(layer, layers.Dense)]
    assert len({id(layer) for layer in dense}) == len(dense)
    # Shared: 2 layers x (4 self-attention + 2 feed-forward) once, plus each decoder layer's 4 cross-attention.
    assert len(dense) == 2 * 6 + 2 * 4
    kernels = {id(w) for w in model.weights if w.path.endswith("kernel")}
    assert {id(layer.kernel) for layer in dense} == kernels
