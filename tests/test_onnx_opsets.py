"""Ops whose inputs or attributes changed between op sets 9 and 21, each in its old and new
form, after a conv (channels-last inside), against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed: convolve.onnx tests skipped")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from convolve.onnx import load  # noqa: E402
from tests.test_onnx_load import CONV, CONV_INITS, model_bytes, ort_run  # noqa: E402

make = onnx.helper.make_node


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


# name -> (op set, nodes reading the conv output "c" and writing "y", initializers)
CASES = {
    "slice_attributes_9": (9, [make("Slice", ["c"], ["y"], starts=[1, 1], ends=[3, 100],
                                    axes=[1, 3])], {}),
    "slice_inputs_steps_13": (13, [make("Slice", ["c", "s", "e", "a", "st"], ["y"])],
                              {"s": i64(-1, 0), "e": i64(-100, 5), "a": i64(3, 1),
                               "st": i64(-2, 2)}),
    "squeeze_unsqueeze_attributes_9": (9, [
        make("ReduceMean", ["c"], ["m"], axes=[2]),
        make("Squeeze", ["m"], ["s"], axes=[2]),
        make("Unsqueeze", ["s"], ["y"], axes=[0, 4])], {}),
    "squeeze_unsqueeze_inputs_13": (13, [
        make("ReduceSum", ["c", "ra"], ["m"]),
        make("Squeeze", ["m", "sa"], ["s"]),
        make("Unsqueeze", ["s", "ua"], ["y"])],
        {"ra": i64(3), "sa": i64(3), "ua": i64(1)}),
    "reduce_axes_input_18": (18, [make("ReduceMax", ["c", "a"], ["y"], keepdims=0)],
                             {"a": i64(1, 3)}),
    "reduce_noop_empty_axes_18": (18, [make("ReduceMean", ["c"], ["y"],
                                            noop_with_empty_axes=1)], {}),
    "split_attribute_9": (9, [make("Split", ["c"], ["y", "z"], axis=1, split=[3, 1])], {}),
    "split_input_13": (13, [make("Split", ["c", "s"], ["y", "z"], axis=-1)],
                       {"s": i64(2, 4)}),
    "split_num_outputs_18": (18, [make("Split", ["c"], ["y", "z", "t"], axis=2,
                                       num_outputs=3)], {}),
    "pad_attributes_9": (9, [make("Pad", ["c"], ["y"], mode="edge",
                                  pads=[0, 1, 2, 0, 0, 0, 1, 3])], {}),
    "pad_inputs_constant_11": (11, [make("Pad", ["c", "p", "v"], ["y"])],
                               {"p": i64(0, 0, 1, 1, 0, 0, 2, 0),
                                "v": np.array(0.5, np.float32)}),
    "pad_axes_18": (18, [make("Pad", ["c", "p", "", "a"], ["y"], mode="reflect")],
                    {"p": i64(1, 2, 2, 1), "a": i64(3, 2)}),
    "clip_attributes_9": (9, [make("Clip", ["c"], ["y"], min=-0.5, max=0.7)], {}),
    "clip_inputs_11": (11, [make("Clip", ["c", "", "hi"], ["y"])],
                       {"hi": np.array(0.3, np.float32)}),
    "softmax_flattening_9": (9, [make("Softmax", ["c"], ["y"], axis=1)], {}),
    "logsoftmax_flattening_11": (11, [make("LogSoftmax", ["c"], ["y"], axis=2)], {}),
    "softmax_one_axis_13": (13, [make("Softmax", ["c"], ["y"], axis=2)], {}),
    "upsample_nearest_9": (9, [make("Upsample", ["c", "s"], ["y"], mode="nearest")],
                           {"s": np.array([1, 1, 2, 3], np.float32)}),
    "upsample_linear_9": (9, [make("Upsample", ["c", "s"], ["y"], mode="linear")],
                          {"s": np.array([1, 1, 2, 2], np.float32)}),
    "resize_10": (10, [make("Resize", ["c", "s"], ["y"], mode="nearest")],
                  {"s": np.array([1, 1, 2, 2], np.float32)}),
    "resize_align_corners_11": (11, [make(
        "Resize", ["c", "roi", "sc", "sz"], ["y"], mode="linear",
        coordinate_transformation_mode="align_corners")],
        {"roi": np.zeros(0, np.float32), "sc": np.zeros(0, np.float32),
         "sz": i64(2, 4, 9, 4)}),
    "resize_asymmetric_floor_13": (13, [make(
        "Resize", ["c", "", "s"], ["y"], mode="nearest",
        coordinate_transformation_mode="asymmetric", nearest_mode="floor")],
        {"s": np.array([1, 1, 1.5, 2.5], np.float32)}),
    "resize_axes_18": (18, [make("Resize", ["c", "", "s"], ["y"], mode="linear", axes=[3, 2])],
                       {"s": np.array([2, 0.5], np.float32)}),
    "batchnorm_9": (9, [make("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"],
                             epsilon=1e-3)],
                    {"g": np.full(4, 1.5, np.float32), "b": np.ones(4, np.float32),
                     "m": np.full(4, 0.1, np.float32), "v": np.full(4, 2, np.float32)}),
    "dropout_ratio_attribute_9": (9, [make("Dropout", ["c"], ["y"], ratio=0.3)], {}),
    "dropout_ratio_input_13": (13, [make("Dropout", ["c", "r"], ["y"])],
                               {"r": np.array(0.2, np.float32)}),
    "maxpool_ceil_dilations_10": (10, [make("MaxPool", ["c"], ["y"], kernel_shape=[2, 2],
                                            strides=[2, 2], ceil_mode=1, dilations=[1, 2])],
                                  {}),
    "averagepool_same_upper_9": (9, [make("AveragePool", ["c"], ["y"], kernel_shape=[3, 2],
                                          strides=[2, 2], auto_pad="SAME_UPPER")], {}),
    "conv_same_lower_11": (11, [make("Conv", ["c", "w2"], ["y"], kernel_shape=[2, 3],
                                     strides=[2, 1], auto_pad="SAME_LOWER")],
                           {"w2": np.ones((2, 4, 2, 3), np.float32)}),
    "convtranspose_output_shape_11": (11, [make(
        "ConvTranspose", ["c", "wt"], ["y"], strides=[2, 2], output_shape=[13, 12])],
        {"wt": np.ones((4, 2, 3, 3), np.float32)}),
    "gemm_transposes_9": (9, [make("Flatten", ["c"], ["f"]),
                              make("Gemm", ["f", "gw", "gb"], ["y"], transA=0, transB=1,
                                   alpha=0.5, beta=2.0)],
                          {"gw": np.ones((3, 144), np.float32), "gb": np.ones((1, 3),
                                                                              np.float32)}),
    "gather_negative_indices_11": (11, [make("Gather", ["c", "i"], ["y"], axis=2)],
                                   {"i": i64(-1, 0, -2)}),
    "expand_and_where_11": (11, [make("Expand", ["c", "sh"], ["e"]),
                               make("Equal", ["e", "e"], ["q"]),
                               make("Where", ["q", "e", "c"], ["y"])],
                           {"sh": i64(2, 1, 1, 1)}),
    "hardswish_14": (14, [make("HardSwish", ["c"], ["y"])], {}),
    "gelu_tanh_20": (20, [make("Gelu", ["c"], ["y"], approximate="tanh")], {}),
    "prelu_channels_9": (9, [make("PRelu", ["c", "sl"], ["y"])],
                         {"sl": np.array([[[0.1]], [[0.2]], [[0.3]], [[-0.4]]], np.float32)}),
    "lrn_9": (9, [make("LRN", ["c"], ["y"], size=3, alpha=0.1, beta=0.7, bias=1.5)], {}),
    "range_and_cast_11": (11, [make("Shape", ["c"], ["sh"]),
                               make("Cast", ["sh"], ["shf"], to=onnx.TensorProto.FLOAT),
                               make("ReduceSum", ["shf"], ["n"], keepdims=0),
                               make("Range", ["zero", "n", "step"], ["r"]),
                               make("Add", ["c", "last"], ["y"]),
                               make("Identity", ["r"], ["z"])],
                          {"zero": np.array(0, np.float32), "step": np.array(1.5, np.float32),
                           "last": np.ones(6, np.float32)}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_set_variants_match_onnxruntime(case: str) -> None:
    opset, nodes, inits = CASES[case]
    outputs = [o for o in nodes[-1].output] + [o for n in nodes[:-1] for o in n.output
                                                if o == "z"]
    blob = model_bytes(CONV + nodes, {"x": [2, 3, 6, 6]}, {o: None for o in outputs},
                       {**CONV_INITS, **inits}, opset=opset)
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    got = load(blob).run({"x": x})
    for name, want in zip(outputs, ort_run(blob, {"x": x})):
        assert got[name].shape == want.shape, name
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-5, err_msg=name)
