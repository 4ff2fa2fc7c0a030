"""The public names DESIGN.md promises, and what `import convolve` costs."""

import subprocess
import sys
from pathlib import Path

import pytest

import convolve

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = {
    "convolve": [
        "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d",
        "global_max_pool2d", "relu", "leaky_relu", "tanh", "sigmoid", "softmax",
        "log_softmax", "gelu", "conv2d_output_shape", "explain", "Tensor", "no_grad", "fit",
        "evaluate", "predict",
    ],
    "convolve.nn": [
        "Conv2D", "ConvTranspose2D", "DepthwiseConv2D", "MaxPool2D", "AvgPool2D",
        "GlobalAvgPool2D", "ReLU", "Tanh", "Sigmoid", "LeakyReLU", "Softmax", "Flatten",
        "Dense", "Dropout", "BatchNorm2D", "Sequential",
    ],
    "convolve.losses": ["cross_entropy", "mse"],
    "convolve.optim": ["SGD", "Adam", "AdamW"],
    "convolve.data": ["mnist", "fashion_mnist", "cifar10"],
    "convolve.filters": ["kernel", "apply"],
    "convolve.viz": ["plot_filters", "plot_feature_maps", "plot_history"],
}


@pytest.mark.parametrize("module", list(PUBLIC))
def test_design_names_are_reachable_from_import_convolve(module):
    namespace = convolve
    for part in module.split(".")[1:]:
        namespace = getattr(namespace, part)
    missing = [name for name in PUBLIC[module] if not hasattr(namespace, name)]
    assert not missing


def test_fit_evaluate_predict_are_the_training_loop():
    assert convolve.fit is convolve.train.fit
    assert convolve.evaluate is convolve.train.evaluate
    assert convolve.predict is convolve.train.predict


def test_import_convolve_loads_no_optional_dependency():
    heavy = ("PIL", "matplotlib", "tqdm", "scipy", "safetensors", "torch", "cv2")
    code = ("import sys, convolve; print(sorted({m.split('.')[0] for m in sys.modules} & "
            f"set({heavy!r})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"
