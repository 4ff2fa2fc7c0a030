"""The ONNX package's own node test cases (``onnx.backend.test.case.node``), each model run
through ``convolve.onnx.load`` and compared with the expected outputs.

Every case whose ops the loader registers is run. Cases using settings outside the
loader's scope must be refused at load with an ``OnnxError`` (asserted, not skipped); the
few that cannot be compared are skipped with the reason in ``SKIPPED``.
"""

from __future__ import annotations

import fnmatch
import functools
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from convolve.onnx import load  # noqa: E402
from convolve.onnx.errors import OnnxError  # noqa: E402
from convolve.onnx.registry import REGISTRY  # noqa: E402

# Settings outside the issue's scope: load must refuse them, naming the op.
REFUSED = {
    "test_resize_*cubic*": "Resize mode='cubic' (the issue asks for nearest and linear)",
    "test_resize_*antialias*": "Resize antialias=1",
    "test_resize_tf_crop_and_resize*": "Resize coordinate mode tf_crop_and_resize",
    "test_*pool_3d*": "3-D pooling (1-D and 2-D only)",
    "test_convtranspose_3d": "3-D transposed convolution (1-D and 2-D only)",
    "test_averagepool_2d_dilations": "dilated AveragePool (op set 19's dilations)",
    "test_maxpool_with_argmax*": "MaxPool's Indices output",
    "test_batchnorm_*_training_mode": "BatchNormalization's training-mode outputs",
    "test_identity_sequence": "sequence-typed graph inputs",
    "test_identity_opt": "optional-typed graph inputs",
    "test_not_*": "op set 1 models (op sets 7 and later are read)",
    "test_cast*FLOAT8*": "float8 element types",
    "test_cast*INT4*": "4-bit element types",
    "test_cast*INT2*": "2-bit element types",
    "test_cast*FLOAT4*": "4-bit float element types",
    "test_cast*BFLOAT16*": "bfloat16 element types",
    "test_cast_e8m0*": "float8 element types",
    "test_*bfloat16*": "bfloat16 element types",
    "test_*_bf16*": "bfloat16 element types",
    "test_equal_string*": "string element types",
}

# Cases that cannot be compared, with why.
SKIPPED = {
    "test_training_dropout*": "Dropout in training mode draws random masks: another "
                              "generator than the reference's",
    "test_maxpool_2d_uint8": "integer pooling: convolve's pooling ops take floats",
    "test_reduce_max_empty_set_bool": "a maximum over an empty set of booleans",
    "test_causal_conv_with_state_silu_fp16_expanded": "float16 arithmetic: the reference "
                                                      "rounds each step to float16",
}

# The ops issue 11 lists: each must have a case of its own that runs.
ISSUE_OPS = (
    "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "BatchNormalization", "LRN", "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Sigmoid",
    "HardSigmoid", "HardSwish", "Tanh", "Softplus", "Gelu", "Erf", "Clip", "Softmax",
    "LogSoftmax", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Exp", "Log",
    "Neg", "Abs", "Sum", "Max", "Min", "Mean", "Concat", "Split", "Slice", "Reshape",
    "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Shape", "Gather", "Constant",
    "ConstantOfShape", "Identity", "Dropout", "Pad", "Resize", "Upsample", "ReduceMean",
    "ReduceMax", "ReduceSum", "Cast", "Expand", "Where", "Equal", "Floor", "Ceil", "Range",
    "Tile",
)


def _match(table: dict[str, str], name: str) -> str | None:
    return next((why for pattern, why in table.items() if fnmatch.fnmatch(name, pattern)),
                None)


@functools.cache
def _cases() -> dict[str, object]:
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node.collect_testcases(None)
    return {case.name: case for case in cases
            if {n.op_type for n in case.model.graph.node} <= set(REGISTRY)}


def _array(value: object) -> np.ndarray:
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    return np.asarray(value)


@pytest.mark.parametrize("name", sorted(_cases()))
def test_node_case(name: str) -> None:
    case = _cases()[name]
    blob = case.model.SerializeToString()
    refused = _match(REFUSED, name)
    if refused is not None:
        with pytest.raises(OnnxError):
            load(blob)
        return
    skipped = _match(SKIPPED, name)
    if skipped is not None:
        pytest.skip(skipped)
    model = load(blob)
    for inputs, outputs in case.data_sets:
        results = model.run({n: _array(v) for n, v in zip(model.input_names, inputs)})
        for output, expected in zip(model.output_names, outputs):
            got, want = np.asarray(results[output]), _array(expected)
            assert got.shape == want.shape, f"{output}: shape {got.shape}, want {want.shape}"
            if want.dtype.kind in "fc":
                np.testing.assert_allclose(got, want, rtol=case.rtol,
                                           atol=max(case.atol, 1e-6), err_msg=output)
            else:
                np.testing.assert_array_equal(got, want, err_msg=output)


def test_every_op_of_the_issue_has_passing_cases() -> None:
    run = [name for name in _cases()
           if _match(REFUSED, name) is None and _match(SKIPPED, name) is None]
    for op in ISSUE_OPS:
        single = [n for n in run
                  if {x.op_type for x in _cases()[n].model.graph.node} == {op}]
        assert single, f"no node test case of {op} alone is run"
