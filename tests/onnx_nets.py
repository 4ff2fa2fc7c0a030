"""Small but structurally faithful CNN families in PyTorch, and their ONNX exports.

Shared by ``tests/test_onnx_nets.py`` (conformance of ``convolve.onnx.load`` with PyTorch)
and ``benchmarks/bench_onnx.py`` (speed against ONNX Runtime). Importing this module needs
torch; callers skip when it is absent.

Each family is a function ``(seed) -> (module, input_shape)``: the module in eval mode with
its batch-norm statistics randomised (so folding them is tested on non-trivial values),
and an NCHW input shape with batch 2.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

F = torch.nn.functional
# As tests/torch_ref.py: the models are tiny (threads only add contention on a busy
# machine), and oneDNN in PyTorch 2.13 corrupts the heap on some tiny strided convs.
torch.set_num_threads(1)
torch.backends.mkldnn.enabled = False

EXPORTERS = ("torchscript", "dynamo")


def conv_bn(c_in: int, c_out: int, k: int, *, stride: int = 1, groups: int = 1,
            act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(c_out)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


# --- ResNet: basic blocks, the second one downsampling with a 1x1 projection shortcut ------

class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn(c_in, c_out, 3, stride=stride)
        self.conv2 = conv_bn(c_out, c_out, 3, act=None)
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out
                         else conv_bn(c_in, c_out, 1, stride=stride, act=None))

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = conv_bn(3, 8, 3)
        self.layers = nn.Sequential(BasicBlock(8, 8, 1), BasicBlock(8, 16, 2),
                                    BasicBlock(16, 16, 1))
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# --- MobileNetV3: depthwise convs, hard-swish, squeeze-excitation with hard-sigmoid --------

class SqueezeExcite(nn.Module):
    def __init__(self, c: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(c, reduced, 1)
        self.expand = nn.Conv2d(reduced, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.expand(F.relu(self.reduce(s))))


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_exp: int, c_out: int, k: int, stride: int, se: bool):
        super().__init__()
        self.expand = conv_bn(c_in, c_exp, 1, act=nn.Hardswish)
        self.depthwise = conv_bn(c_exp, c_exp, k, stride=stride, groups=c_exp,
                                 act=nn.Hardswish)
        self.se = SqueezeExcite(c_exp, max(4, c_exp // 4)) if se else nn.Identity()
        self.project = conv_bn(c_exp, c_out, 1, act=None)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class MobileNetV3(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = conv_bn(3, 8, 3, stride=2, act=nn.Hardswish)
        self.blocks = nn.Sequential(InvertedResidual(8, 16, 8, 3, 1, se=True),
                                    InvertedResidual(8, 24, 16, 5, 2, se=True),
                                    InvertedResidual(16, 32, 16, 3, 1, se=False))
        self.head = nn.Sequential(nn.Linear(16, 32), nn.Hardswish(), nn.Dropout(0.2),
                                  nn.Linear(32, classes))

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# --- U-Net: ConvTranspose, bilinear and nearest upsampling, skip concatenation -------------

def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, classes: int = 2):
        super().__init__()
        self.enc1, self.enc2, self.enc3 = double_conv(3, 8), double_conv(8, 16), double_conv(16, 24)
        self.bottom = double_conv(24, 32)
        self.up3 = nn.ConvTranspose2d(32, 24, 2, stride=2)
        self.dec3 = double_conv(48, 24)
        self.up2 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.dec2 = double_conv(24 + 16, 16)
        self.up1 = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec1 = double_conv(16 + 8, 8)
        self.side = nn.Conv2d(32, 8, 1)
        self.out = nn.Conv2d(8, classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        b = self.bottom(F.max_pool2d(e3, 2))
        d3 = self.dec3(torch.cat([self.up3(b), e3], 1))
        d2 = self.dec2(torch.cat([self.up2(d3), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        # a deep-supervision side path: the bottleneck back to full size in one step
        side = F.interpolate(self.side(b), scale_factor=8, mode="bilinear", align_corners=True)
        return self.out(d1 + side)


# --- DenseNet: every layer's output concatenated to its input ------------------------------

class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, 2 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * growth)
        self.conv2 = nn.Conv2d(2 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        y = self.conv1(F.relu(self.bn1(x)))
        return torch.cat([x, self.conv2(F.relu(self.bn2(y)))], 1)


class DenseNet(nn.Module):
    def __init__(self, classes: int = 10, growth: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.block1 = nn.Sequential(*(DenseLayer(8 + i * growth, growth) for i in range(3)))
        self.transition = nn.Sequential(nn.BatchNorm2d(20), nn.ReLU(),
                                        nn.Conv2d(20, 10, 1, bias=False), nn.AvgPool2d(2))
        self.block2 = nn.Sequential(*(DenseLayer(10 + i * growth, growth) for i in range(3)))
        self.norm = nn.BatchNorm2d(22)
        self.fc = nn.Linear(22, classes)

    def forward(self, x):
        x = self.block2(self.transition(self.block1(self.stem(x))))
        x = F.adaptive_avg_pool2d(F.relu(self.norm(x)), 1)
        return self.fc(torch.flatten(x, 1))


# --- Inception (GoogLeNet v1): LRN, ceil-mode pooling, four concatenated branches ----------

class _LRNFunction(torch.autograd.Function):
    """Local response normalisation that the TorchScript exporter writes as ONNX ``LRN``."""

    @staticmethod
    def forward(ctx, x, size, alpha, beta, k):
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k):
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class LRN(nn.LocalResponseNorm):
    """``nn.LocalResponseNorm`` exported as one ONNX ``LRN`` node, as Caffe-converted
    GoogLeNets have it (PyTorch's exporters would otherwise spell it out with 5-D pooling)."""

    def forward(self, x):
        if not torch.onnx.is_in_onnx_export():
            return super().forward(x)
        if torch.jit.is_tracing():
            return _LRNFunction.apply(x, self.size, self.alpha, self.beta, self.k)
        return torch.onnx.ops.symbolic(
            "LRN", (x,), dict(size=self.size, alpha=self.alpha, beta=self.beta, bias=self.k),
            dtype=x.dtype, shape=x.shape, version=1)


class InceptionModule(nn.Module):
    def __init__(self, c_in: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, cp: int):
        super().__init__()
        self.b1 = nn.Sequential(nn.Conv2d(c_in, c1, 1), nn.ReLU())
        self.b3 = nn.Sequential(nn.Conv2d(c_in, c3r, 1), nn.ReLU(),
                                nn.Conv2d(c3r, c3, 3, padding=1), nn.ReLU())
        self.b5 = nn.Sequential(nn.Conv2d(c_in, c5r, 1), nn.ReLU(),
                                nn.Conv2d(c5r, c5, 5, padding=2), nn.ReLU())
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, padding=1, ceil_mode=True),
                                nn.Conv2d(c_in, cp, 1), nn.ReLU())

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)


class Inception(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 7, stride=2, padding=3), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, ceil_mode=True),
                                  LRN(5, alpha=1e-4, beta=0.75, k=2.0))
        self.mixed1 = InceptionModule(16, 8, 8, 12, 4, 4, 4)
        # ceil mode on a 8x8 map: 3x3/2 windows, the last one hanging over the padded edge
        self.pool = nn.AvgPool2d(3, 2, padding=1, ceil_mode=True)
        self.pool_excl = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
        self.mixed2 = InceptionModule(28, 8, 8, 16, 4, 8, 8)
        self.fc = nn.Linear(40, classes)

    def forward(self, x):
        x = self.mixed2(self.pool(self.mixed1(self.stem(x))))
        x = self.pool_excl(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# --- YOLO-style: space-to-depth stem, SiLU, channel shuffle, SPP, detection-head reshape ----

class Focus(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = conv_bn(4 * c_in, c_out, 3, act=nn.SiLU)

    def forward(self, x):
        return self.conv(torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2],
                                    x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1))


def channel_shuffle(x, groups: int):
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class SPP(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernels: tuple[int, ...] = (5, 9, 13)):
        super().__init__()
        self.reduce = conv_bn(c_in, c_in // 2, 1, act=nn.SiLU)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in kernels)
        self.fuse = conv_bn(c_in // 2 * (len(kernels) + 1), c_out, 1, act=nn.SiLU)

    def forward(self, x):
        x = self.reduce(x)
        return self.fuse(torch.cat([x, *(pool(x) for pool in self.pools)], 1))


class YoloStem(nn.Module):
    def __init__(self, anchors: int = 3, classes: int = 4):
        super().__init__()
        self.anchors, self.outputs = anchors, classes + 5
        self.focus = Focus(3, 16)
        self.down = conv_bn(16, 32, 3, stride=2, act=nn.SiLU)
        self.mix = conv_bn(32, 32, 3, groups=4, act=nn.SiLU)
        self.spp = SPP(32, 32)
        self.head = nn.Conv2d(32, anchors * self.outputs, 1)

    def forward(self, x):
        x = self.spp(channel_shuffle(self.mix(self.down(self.focus(x))), 4))
        y = self.head(x)
        n, _, h, w = y.shape
        y = y.view(n, self.anchors, self.outputs, h, w).permute(0, 1, 3, 4, 2).sigmoid()
        return y.reshape(n, -1, self.outputs)


FAMILIES: dict[str, Callable[[], nn.Module]] = {
    "resnet": ResNet, "mobilenetv3": MobileNetV3, "unet": UNet, "densenet": DenseNet,
    "inception": Inception, "yolo": YoloStem,
}
INPUT_SIZE = {"resnet": 32, "mobilenetv3": 32, "unet": 32, "densenet": 32,
              "inception": 64, "yolo": 64}


def build(family: str, *, seed: int = 0, batch: int = 2,
          size: int | None = None) -> tuple[nn.Module, tuple[int, int, int, int]]:
    """The family's module in eval mode, seeded, with non-trivial batch-norm statistics,
    and its NCHW input shape (``size`` a multiple of 32; the family's own by default)."""
    torch.manual_seed(seed)
    model = FAMILIES[family]()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(c, generator=generator))
                m.weight.copy_(0.5 + torch.rand(c, generator=generator))
                m.bias.copy_(0.1 * torch.randn(c, generator=generator))
    size = size or INPUT_SIZE[family]
    return model.eval(), (batch, 3, size, size)


def export(model: nn.Module, shape: tuple[int, ...], exporter: str, *,
           opset: int = 17, constant_folding: bool = True) -> bytes:
    """The ONNX bytes of ``model`` traced on a random input of ``shape``, the batch axis
    dynamic, with PyTorch's TorchScript-based (``"torchscript"``) or ``torch.export``-based
    (``"dynamo"``) exporter."""
    x = torch.randn(*shape)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                              do_constant_folding=constant_folding)
            return buffer.getvalue()
        if exporter == "dynamo":
            program = torch.onnx.export(
                model, (x,), dynamo=True, opset_version=max(opset, 18), input_names=["input"],
                output_names=["output"], dynamic_shapes=({0: torch.export.Dim("batch")},),
                optimize=True, verbose=False)
            return program.model_proto.SerializeToString()
    raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")


def exported(family: str, exporter: str, *, constant_folding: bool = True) -> bytes:
    """``export`` of ``build(family)``, once per process (the test modules share it)."""
    return _exported(family, exporter, constant_folding)


@functools.cache
def _exported(family: str, exporter: str, constant_folding: bool) -> bytes:
    model, shape = build(family)
    return export(model, shape, exporter, constant_folding=constant_folding)


def torch_forward(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()
