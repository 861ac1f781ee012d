"""Stored matrices (int8, bfloat16, float): their products in every form against numpy, their lookups, and
the export's refusals of storage that cannot be served."""

import numpy as np
import pytest
import tensorflow as tf

from tf_bert_seqgen import tuning
from tf_bert_seqgen.config import BertForSeqGenerationConfig
from tf_bert_seqgen.export.weights import check_weights_dtype
from tf_bert_seqgen.products import STREAMED_FORMS, Form, ProductForms
from tf_bert_seqgen.storage import Bfloat16Matrix, FloatMatrix, Int8Matrix, float32_once, quantize_int8


def test_int8_quantization_is_symmetric_with_one_scale_per_output_channel():
    weights = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [0.003, 0.002, -0.001]], np.float32)
    values, scale = quantize_int8(weights)
    # By hand: row 0 peaks at 1.0 -> scale 1/127, 0.5 * 127 = 63.5 rounds to the even 64, 0.25 * 127 = 31.75
    # to 32; an all-zero row keeps scale 1; row 2's peak 0.003 maps to 127.
    np.testing.assert_allclose(scale, [1 / 127, 1.0, 0.003 / 127], rtol=1e-7)
    assert values.dtype == np.int8
    assert values.tolist() == [[64, -127, 32], [0, 0, 0], [127, 85, -42]]
    with pytest.raises(ValueError, match="inf or nan"):
        quantize_int8(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match=r"\[out, in\] matrix"):
        quantize_int8(np.ones(3))


def _matrices(forms):
    """A [50, 24] int8 matrix and a bfloat16 one, with their numpy float32 values."""
    rng = np.random.default_rng(0)
    weights = rng.normal(0, 0.3, (50, 24)).astype(np.float32)
    values, scale = quantize_int8(weights)
    int8 = Int8Matrix(tf.Variable(values), tf.Variable(scale), forms)
    half = tf.cast(weights, tf.bfloat16)
    # bfloat16 -> float32 by numpy: the high 16 bits of a float32.
    half_as_float = (tf.bitcast(half, tf.uint16).numpy().astype(np.uint32) << 16).view(np.float32)
    return [(int8, values.astype(np.float32) * scale[:, None]),
            (Bfloat16Matrix(tf.Variable(half), forms), half_as_float)]


# Blocks of 5 rows of 24 inputs: a 50-row matrix makes 10 blocks; blocks of 7 rows leave a remainder of 1.
# Two lanes: groups of 10 (5 whole, none left) and of 14 rows (3 whole, 8 left).
FORMS = [Form(name, rows * 24, lanes) for name in STREAMED_FORMS for rows in (5, 7) for lanes in (1, 2)
         if name != "dequantized" or lanes == 1]


@pytest.mark.parametrize("form", FORMS, ids=str)
@pytest.mark.parametrize("rows", [1, 3, 8])
def test_every_product_form_equals_numpy_under_xla(form, rows):
    x = np.random.default_rng(rows).normal(0, 1, (rows, 1, 24)).astype(np.float32)  # a decode step
    encoder_x = x.reshape(1, rows, 24)  # the same rows as one pass over positions
    for matrix, dense in _matrices(ProductForms(((rows, form),), encoder=form)):
        step = tf.function(matrix.times_transposed, jit_compile=True)
        expected = x @ dense.T
        np.testing.assert_allclose(step(tf.constant(x)).numpy(), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(step(tf.constant(encoder_x)).numpy(), encoder_x @ dense.T, rtol=1e-5, atol=1e-5)
        # Outside XLA the stored matrix is widened to float32 for the product.
        np.testing.assert_allclose(matrix.times_transposed(tf.constant(x)).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_lookups_and_dense_values_equal_numpy():
    ids = np.array([[0, 49, 7], [7, 7, 3]])
    for matrix, dense in _matrices(ProductForms()):
        np.testing.assert_array_equal(matrix.dense().numpy(), dense)
        np.testing.assert_array_equal(matrix.rows(tf.constant(ids)).numpy(), dense[ids])
        assert matrix.shape == (50, 24)
    int8, bfloat16 = (m for m, _ in _matrices(ProductForms()))
    assert int8.nbytes == 50 * 24 + 4 * 50 and bfloat16.nbytes == 2 * 50 * 24


def test_bfloat16_widening_is_exact_for_signs_and_extremes():
    values = tf.constant([0.0, -0.0, 1.0, -2.5, 3.0e38, -1.0e-38, float("inf"), 1e-40], tf.bfloat16)
    matrix = Bfloat16Matrix(tf.Variable(values[None]))
    widened = matrix.dense().numpy()[0]
    np.testing.assert_array_equal(widened, tf.cast(values, tf.float32).numpy())
    assert np.signbit(widened[1])


def test_float_matrix_layouts_and_float16_storage():
    weights = np.random.default_rng(1).normal(0, 1, (6, 4)).astype(np.float32)
    x = np.random.default_rng(2).normal(0, 1, (2, 3, 4)).astype(np.float32)
    for matrix in (FloatMatrix(tf.Variable(weights)), FloatMatrix(tf.Variable(weights.T.copy()), layout="in_out")):
        assert matrix.shape == (6, 4)
        np.testing.assert_allclose(matrix.times_transposed(tf.constant(x)).numpy(), x @ weights.T, rtol=1e-5)
        np.testing.assert_array_equal(matrix.dense().numpy(), weights)
    half = FloatMatrix(tf.Variable(weights.astype(np.float16)))
    np.testing.assert_allclose(half.times_transposed(tf.constant(x)).numpy(),
                               x @ weights.astype(np.float16).astype(np.float32).T, rtol=1e-5)
    with pytest.raises(ValueError, match="layout"):
        FloatMatrix(tf.Variable(weights), layout="columns")


def test_matrices_widened_once_per_call_give_the_same_products():
    """`float32_once` (a model call's start): float16 [in, out] kernels, and int8 / bfloat16 matrices in the
    dequantized form, multiply by their float32 values computed there."""
    weights = np.random.default_rng(3).normal(0, 1, (50, 24)).astype(np.float32)
    x = tf.constant(np.random.default_rng(4).normal(0, 1, (2, 1, 24)).astype(np.float32))
    half = FloatMatrix(tf.Variable(weights.T.astype(np.float16)), layout="in_out")
    matrices = [half] + [m for m, _ in _matrices(ProductForms())]
    expected = [m.times_transposed(x).numpy() for m in matrices]

    @tf.function(jit_compile=True)
    def call(x):
        with float32_once(matrices):
            return [m.times_transposed(x) for m in matrices]

    for got, want in zip(call(x), expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    assert all(m._per_call is None for m in matrices)  # nothing is left set after the call


def test_forms_parse_and_round_trip():
    forms = ProductForms(((1, Form("blocks", 2 ** 19, lanes=2)), (4, Form("row_blocks", 2 ** 18))), Form("dequantized"))
    assert ProductForms.from_dict(forms.to_dict()) == forms
    assert forms.to_dict() == {"decode": {"1": "blocks/524288x2", "4": "row_blocks/262144"}, "encoder": "dequantized"}
    assert forms.for_rows(4) == Form("row_blocks", 2 ** 18)
    assert forms.for_rows(2) == forms.for_rows(None) == Form("dequantized")  # not measured: float32's form
    with pytest.raises(ValueError, match="unknown product form 'tiles'"):
        Form.parse("tiles/64")
    with pytest.raises(ValueError, match="an int8 matrix"):
        Int8Matrix(tf.Variable(np.zeros([2, 2], np.float32)), tf.Variable(np.ones(2, np.float32)))


def test_measured_forms_are_the_fastest_candidate_of_each_row_count():
    config = BertForSeqGenerationConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=64)
    forms, timings = tuning.measure_forms(config, "int8", [1, 2], encoder_rows=8)
    for rows in (1, 2):
        measured = timings["decode"][str(rows)]
        assert sorted(measured) == sorted(str(form) for form in tuning.candidates(rows))
        assert all(ms > 0 for ms in measured.values())
        assert forms.for_rows(rows) == tuning._chosen(measured)
    assert forms.encoder == tuning._chosen(timings["encoder"])


def test_a_block_form_is_chosen_only_where_it_clearly_beats_float32():
    # The stand-in's gains ran about 10 points above the model's: 15% is the margin (tuning._MARGIN).
    assert str(tuning._chosen({"blocks/262144": 8.0, "blocks/524288": 8.4, "dequantized": 10.0})) == "blocks/262144"
    assert str(tuning._chosen({"blocks/262144": 9.0, "dequantized": 10.0})) == "dequantized"
    assert str(tuning._chosen({"row_blocks/262144": 11.0, "dequantized": 10.0})) == "dequantized"


@pytest.mark.parametrize("weights_dtype, model_dtype, jit, message", [
    ("int4", "float32", True, "unknown weights_dtype 'int4'"),
    ("int8", "bfloat16", True, "stores a float32 model's weights.*this is a bfloat16 model"),
    ("float16", "float32", True, "float16.* is for graph-mode exports"),
    ("bfloat16", "float32", False, "bfloat16.* under XLA only: add jit_compile=True"),
])
def test_storage_that_cannot_be_served_is_refused(weights_dtype, model_dtype, jit, message):
    with pytest.raises(ValueError, match=message):
        check_weights_dtype(weights_dtype, model_dtype, jit)


def test_storage_defaults_to_the_model_dtype():
    assert check_weights_dtype(None, "float32", True) == "float32"
    assert check_weights_dtype(None, "bfloat16", False) == "bfloat16"
    assert check_weights_dtype("int8", "float32", False) == "int8"  # graph mode: decided by a measurement
