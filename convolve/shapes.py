"""Output sizes and padding resolution for sliding-window ops, answered without running them.

Notation (per spatial axis): ``n`` input size, ``k`` kernel size, ``s`` stride, ``d``
dilation, ``p0``/``p1`` padding before/after. The dilated kernel spans
``e = d * (k - 1) + 1`` input pixels and the output size is
``floor((n + p0 + p1 - e) / s) + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from convolve import _args
from convolve._args import Pads


def effective_kernel(k: int, dilation: int) -> int:
    """The input pixels a kernel of ``k`` taps spans with ``dilation``."""
    return dilation * (k - 1) + 1


def resolve_pads(
    spec: str | Pads, size: tuple[int, int], kernel: tuple[int, int],
    stride: tuple[int, int], dilation: tuple[int, int],
) -> Pads:
    """Per-side pads ``((top, bottom), (left, right))`` for a normalised padding spec."""
    if not isinstance(spec, str):
        return spec
    pads = []
    for n, k, s, d in zip(size, kernel, stride, dilation):
        e = effective_kernel(k, d)
        if spec == "valid":
            pads.append((0, 0))
        elif spec == "full":
            pads.append((e - 1, e - 1))
        else:  # "same": the TensorFlow rule, odd pixel bottom/right
            out = -(-n // s)
            total = max(0, (out - 1) * s + e - n)
            pads.append((total // 2, total - total // 2))
    return tuple(pads)  # type: ignore[return-value]


def window_output_size(
    size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
    dilation: tuple[int, int], pads: Pads, *, what: str = "kernel",
) -> tuple[int, int]:
    """Output ``(H_out, W_out)``; a ValueError when the window does not fit once."""
    out = []
    for axis, n, k, s, d, (p0, p1) in zip(("height", "width"), size, kernel, stride,
                                           dilation, pads):
        e = effective_kernel(k, d)
        if n + p0 + p1 < e:
            raise _window_too_large(what, axis, n, k, d, p0, p1)
        out.append((n + p0 + p1 - e) // s + 1)
    return tuple(out)  # type: ignore[return-value]


def _window_too_large(what: str, axis: str, n: int, k: int, d: int, p0: int,
                      p1: int) -> ValueError:
    return ValueError(
        f"the {what} is larger than the padded input along the {axis}: {what} size "
        f"{k} with dilation {d} spans {effective_kernel(k, d)} pixels, but the input has "
        f"{n} pixels plus padding {p0}+{p1} = {n + p0 + p1}"
    )


def conv2d_output_shape(
    input_shape: tuple[int, ...], weight_shape: tuple[int, int, int, int], *,
    stride: Any = 1, padding: Any = "valid", dilation: Any = 1, groups: int = 1,
) -> tuple[int, ...]:
    """The shape ``conv2d`` returns for an input and weight of these shapes.

    Arguments:
        input_shape: ``(N, H, W, C_in)`` or ``(H, W, C_in)``.
        weight_shape: ``(KH, KW, C_in // groups, C_out)``.

    Returns:
        ``(N, H_out, W_out, C_out)`` or ``(H_out, W_out, C_out)``.
    """
    geometry = conv_geometry(_args.shape(input_shape, "input_shape"),
                             _args.shape(weight_shape, "weight_shape"), stride=stride,
                             padding=padding, dilation=dilation, groups=groups)
    return geometry.output_shape


class _Batched:
    """What every geometry derives from its input shape, output size and channel count."""

    input_shape: tuple[int, ...]
    out_hw: tuple[int, int]

    @property
    def out_channels(self) -> int:
        raise NotImplementedError

    @property
    def batched(self) -> bool:
        return len(self.input_shape) == 4

    @property
    def output_shape(self) -> tuple[int, ...]:
        shape = (*self.out_hw, self.out_channels)
        return (self.input_shape[0], *shape) if self.batched else shape


@dataclass(frozen=True)
class ConvGeometry(_Batched):
    """Every size of one conv2d call, validated."""

    input_shape: tuple[int, ...]
    weight_shape: tuple[int, int, int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: Pads
    groups: int
    out_hw: tuple[int, int]

    @property
    def out_channels(self) -> int:
        return self.weight_shape[3]

    @property
    def padded_shape(self) -> tuple[int, int, int, int]:
        """The padded input the methods read: ``(N, Hp, Wp, C_in)`` (N = 1 unbatched)."""
        (top, bottom), (left, right) = self.pads
        h, w, c = self.input_shape[-3:]
        return (self.input_shape[0] if self.batched else 1, h + top + bottom,
                w + left + right, c)


def _check_operands(input_shape: tuple[int, ...], weight_shape: tuple[int, ...],
                    groups: Any, weight_layout: str) -> int:
    """The checks conv2d and conv_transpose2d share; returns ``groups`` as an int."""
    _args.rank(input_shape, "x", _args.IMAGE)
    _args.rank(weight_shape, "w", {4: weight_layout})
    groups = _args.integer(groups, "groups")
    if min(weight_shape[:2]) < 1:
        raise ValueError(f"kernel size must be >= 1; received w of shape {weight_shape}")
    c_in = input_shape[-1]
    if c_in % groups:
        raise ValueError(
            f"groups={groups} must divide the input channels; received x of shape "
            f"{input_shape} with {c_in} channels"
        )
    return groups


def _layout_hint(input_shape: tuple[int, ...], weight_shape: tuple[int, ...],
                 groups: int) -> str:
    """When conv2d's channel check fails: what would fit if w were in PyTorch's layout
    ``(C_out, C_in // groups, KH, KW)`` or x channels-first ``(N, C, H, W)``."""
    hwio = weight_shape[2] * groups
    torch_w = weight_shape[1] * groups  # input channels if w were PyTorch's
    first = input_shape[-3]  # channels if x were channels-first
    hints = []
    if torch_w == input_shape[-1] or (torch_w == first != hwio):
        hints.append(f"w of shape {tuple(weight_shape)} would fit in PyTorch's layout (C_out, "
                     "C_in // groups, KH, KW), but convolve takes (KH, KW, C_in // groups, "
                     "C_out): convert it with w.transpose(2, 3, 1, 0)")
    if first in (hwio, torch_w):
        axes = "(0, 2, 3, 1)" if len(input_shape) == 4 else "(1, 2, 0)"
        hints.append(f"x of shape {tuple(input_shape)} would fit channels-first, but convolve "
                     f"takes channels-last (N, H, W, C): convert it with x.transpose{axes}")
    return "".join(f"; {hint}" for hint in hints)


def conv_geometry(
    input_shape: tuple[int, ...], weight_shape: tuple[int, ...], *, stride: Any,
    padding: Any, dilation: Any, groups: Any,
) -> ConvGeometry:
    """Validate the sizes and settings of a conv2d call and resolve its padding."""
    groups = _check_operands(input_shape, weight_shape, groups,
                             "(KH, KW, C_in // groups, C_out)")
    kh, kw, cg, c_out = weight_shape
    c_in = input_shape[-1]
    if c_out % groups:
        raise ValueError(
            f"groups={groups} must divide the output channels; received w of shape "
            f"{weight_shape} with {c_out} output channels"
        )
    if cg * groups != c_in:
        raise ValueError(
            f"w expects {cg} input channels per group ({cg * groups} in all with "
            f"groups={groups}), but x of shape {input_shape} has {c_in} channels"
            f"{_layout_hint(input_shape, weight_shape, groups)}"
        )
    stride = _args.pair(stride, "stride")
    dilation = _args.pair(dilation, "dilation")
    size = input_shape[-3:-1]
    pads = resolve_pads(_args.padding_spec(padding), size, (kh, kw), stride, dilation)
    out_hw = window_output_size(size, (kh, kw), stride, dilation, pads)
    return ConvGeometry(tuple(input_shape), tuple(weight_shape), stride, dilation, pads,
                        groups, out_hw)


@dataclass(frozen=True)
class ConvTransposeGeometry(_Batched):
    """Every size of one conv_transpose2d call, validated.

    ``output_padding`` is the effective one (for ``padding="same"`` it is derived).
    """

    input_shape: tuple[int, ...]
    weight_shape: tuple[int, int, int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: Pads
    output_padding: tuple[int, int]
    groups: int
    out_hw: tuple[int, int]

    @property
    def out_channels(self) -> int:
        return self.weight_shape[2] * self.groups

    @property
    def transposed(self) -> ConvGeometry:
        """The conv2d whose input-gradient this is: it maps the output back to the input."""
        return ConvGeometry(self.output_shape, self.weight_shape, self.stride, self.dilation,
                            self.pads, self.groups, tuple(self.input_shape[-3:-1]))


def conv_transpose_geometry(
    input_shape: tuple[int, ...], weight_shape: tuple[int, ...], *, stride: Any,
    padding: Any, output_padding: Any, dilation: Any, groups: Any,
) -> ConvTransposeGeometry:
    """Validate the sizes and settings of a conv_transpose2d call and resolve its padding.

    Per axis the output size is ``(n - 1) * s - p0 - p1 + d * (k - 1) + output_padding + 1``.
    ``padding="same"`` gives ``n * s`` (the size conv2d's "same" maps back to ``n``), with
    that size's "same" pads; ``"valid"`` and ``"full"`` pad as conv2d does.
    """
    groups = _check_operands(input_shape, weight_shape, groups,
                             "(KH, KW, C_out // groups, C_in)")
    kh, kw, _, c_w = weight_shape
    c_in = input_shape[-1]
    if c_w != c_in:
        raise ValueError(
            f"w of shape {weight_shape} (KH, KW, C_out // groups, C_in) expects {c_w} input "
            f"channels, but x of shape {input_shape} has {c_in} channels"
        )
    stride = _args.pair(stride, "stride")
    dilation = _args.pair(dilation, "dilation")
    extra = _args.pair(output_padding, "output_padding", minimum=0)
    size = input_shape[-3:-1]
    spec = _args.padding_spec(padding)
    if spec == "same":
        if extra != (0, 0):
            raise ValueError(
                "output_padding must be 0 with padding='same', whose output size is the "
                f"input size times the stride; received output_padding={output_padding!r}"
            )
        target = tuple(n * s for n, s in zip(size, stride))
        pads = resolve_pads(spec, target, (kh, kw), stride, dilation)
        extra = tuple(t - ((n - 1) * s - p0 - p1 + effective_kernel(k, d))
                      for t, n, s, (p0, p1), k, d in zip(target, size, stride, pads,
                                                          (kh, kw), dilation))
    else:
        pads = resolve_pads(spec, size, (kh, kw), stride, dilation)
    out_hw = []
    for axis, n, k, s, d, (p0, p1), op in zip(("height", "width"), size, (kh, kw), stride,
                                               dilation, pads, extra):
        if op >= s and op >= d:
            raise ValueError(
                f"output_padding must be smaller than the stride or the dilation along the "
                f"{axis}; received output_padding {op} with stride {s} and dilation {d}"
            )
        full = (n - 1) * s + effective_kernel(k, d) + op
        if full - p0 - p1 < 1:
            raise ValueError(
                f"the padding removes the whole output along the {axis}: the transposed "
                f"convolution spans {full} pixels, but padding {p0}+{p1} = {p0 + p1} is "
                "cut from them"
            )
        out_hw.append(full - p0 - p1)
    return ConvTransposeGeometry(tuple(input_shape), tuple(weight_shape), stride, dilation,
                                 pads, tuple(extra), groups, tuple(out_hw))


@dataclass(frozen=True)
class PoolGeometry(_Batched):
    """Every size of one pooling call, validated.

    ``overhang``: pixels past the padded input's bottom and right edge that ceil_mode's last
    window reaches; they hold nothing and are never counted.
    """

    input_shape: tuple[int, ...]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: Pads
    overhang: tuple[int, int]
    out_hw: tuple[int, int]

    @property
    def out_channels(self) -> int:
        return self.input_shape[-1]


def pool_output_size(
    size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
    dilation: tuple[int, int], pads: Pads, *, ceil_mode: bool,
) -> tuple[int, int]:
    """Output ``(H_out, W_out)`` of a pooling window, PyTorch's rule.

    ``floor((n + p0 + p1 - e) / s) + 1``, or with ``ceil_mode`` the ceiling, less one when
    that last window would start past the input and its top/left padding
    (``(out - 1) * s >= n + p0``). A ValueError when no window fits.
    """
    out = []
    for axis, n, k, s, d, (p0, p1) in zip(("height", "width"), size, kernel, stride,
                                           dilation, pads):
        span = n + p0 + p1 - effective_kernel(k, d)
        o = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= n + p0:
            o -= 1
        if o < 1:
            raise _window_too_large("pool", axis, n, k, d, p0, p1)
        out.append(o)
    return tuple(out)  # type: ignore[return-value]


def pool_geometry(
    input_shape: tuple[int, ...], pool_size: Any, *, stride: Any, padding: Any,
    dilation: Any, ceil_mode: bool,
) -> PoolGeometry:
    """Validate the sizes and settings of a pooling call and resolve its padding.

    ``stride=None`` means the pool size. Each pad may be at most half the pool size
    (``pool_size // 2``), PyTorch's rule.
    """
    _args.rank(input_shape, "x", _args.IMAGE)
    _args.pixels(input_shape, "x")
    ceil_mode = _args.flag(ceil_mode, "ceil_mode")
    kernel = _args.pair(pool_size, "pool_size")
    stride = kernel if stride is None else _args.pair(stride, "stride")
    dilation = _args.pair(dilation, "dilation")
    size = input_shape[-3:-1]
    pads = resolve_pads(_args.padding_spec(padding), size, kernel, stride, dilation)
    for axis, k, (p0, p1) in zip(("height", "width"), kernel, pads):
        if max(p0, p1) > k // 2:
            raise ValueError(
                f"padding must be at most half the pool size along the {axis} (pool size "
                f"{k} allows {k // 2}); received pads ({p0}, {p1}) from "
                f"padding={padding!r}"
            )
    out_hw = pool_output_size(size, kernel, stride, dilation, pads, ceil_mode=ceil_mode)
    overhang = tuple(
        max(0, (o - 1) * s + effective_kernel(k, d) - (n + p0 + p1))
        for o, s, k, d, n, (p0, p1) in zip(out_hw, stride, kernel, dilation, size, pads)
    )
    return PoolGeometry(tuple(input_shape), kernel, stride, dilation, pads,
                        overhang, out_hw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class AxisExplanation:
    """The sizes along one axis (``"height"`` or ``"width"``) of a conv2d call."""

    axis: str
    input: int
    kernel: int
    dilation: int
    stride: int
    pad_before: int
    pad_after: int
    output: int
    dropped: int
    receptive_field: int
    windows_in_padding: int

    def __str__(self) -> str:
        text = (
            f"{self.axis}: input {self.input}, kernel {self.kernel} (dilation "
            f"{self.dilation}, spans {self.receptive_field}), stride {self.stride}, pad "
            f"{self.pad_before}+{self.pad_after} -> output {self.output}"
        )
        if self.dropped:
            text += f"; {self.dropped} input pixel(s) at the end never reached (floor)"
        if self.windows_in_padding:
            text += f"; {self.windows_in_padding} window(s) lie entirely in padding"
        return text


@dataclass(frozen=True)
class Explanation:
    """What ``explain`` returns: the shapes and both axes' sizes."""

    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    height: AxisExplanation
    width: AxisExplanation

    def __str__(self) -> str:
        return (f"conv2d {self.input_shape} -> {self.output_shape}\n"
                f"  {self.height}\n  {self.width}")


def _floor_sum(count: int, m: int, a: int, b: int) -> int:
    """``sum((a * i + b) // m for i in range(count))`` in O(log m) steps (the Euclid-like
    reduction of AtCoder Library's ``floor_sum``), for any integers ``a``, ``b`` and
    ``m >= 1``."""
    total = 0
    while count > 0:
        q, a = divmod(a, m)
        total += count * (count - 1) // 2 * q
        q, b = divmod(b, m)
        total += count * q
        top = a * count + b
        if top < m:
            break
        count, b = divmod(top, m)
        m, a = a, m
    return total


def _explain_axis(axis: str, n: int, k: int, s: int, d: int, p0: int, p1: int,
                  out: int) -> AxisExplanation:
    e = effective_kernel(k, d)
    reached = (out - 1) * s + e  # padded pixels covered by some window
    dropped = max(0, n + p0 - reached)
    return AxisExplanation(axis, n, k, d, s, p0, p1, out, dropped, e,
                           out - _windows_touching(n, k, s, d, p0, out))


def _windows_touching(n: int, k: int, s: int, d: int, p0: int, out: int) -> int:
    """How many of the ``out`` windows have a tap on the input, closed-form.

    Window ``i`` has taps at ``i*s + j*d`` (``j < k``) in padded coordinates, the input
    lying on ``[p0, p0 + n)``. Only windows whose span reaches the input can touch it
    (``i`` from ``first`` to ``last``); such a window touches it exactly when
    ``(i*s - p0) mod d < n`` (its first tap at or past ``p0`` is that far past it), and
    ``[x mod d < n] = floor(x / d) - floor((x - n) / d)`` for ``0 <= n <= d`` turns the
    count into two floor sums.
    """
    first = max(0, -(-(p0 - (k - 1) * d) // s))  # the first window ending at or past p0
    last = min(out - 1, (p0 + n - 1) // s)  # the last one starting before p0 + n
    count = last - first + 1
    if n == 0 or count <= 0:
        return 0
    start = first * s - p0
    return _floor_sum(count, d, s, start) - _floor_sum(count, d, s, start - min(n, d))


def explain(
    input_shape: tuple[int, ...], weight_shape: tuple[int, int, int, int], *,
    stride: Any = 1, padding: Any = "valid", dilation: Any = 1, groups: int = 1,
) -> Explanation:
    """Explain the sizes of a conv2d call: per-side pads, output size, input pixels the
    floor drops, the receptive field (the dilated kernel's span) and the number of output
    positions whose window lies entirely in padding. ``str()`` of the result reads well.
    """
    g = conv_geometry(_args.shape(input_shape, "input_shape"),
                      _args.shape(weight_shape, "weight_shape"), stride=stride,
                      padding=padding, dilation=dilation, groups=groups)
    axes = [
        _explain_axis(name, g.input_shape[-3 + i], g.weight_shape[i], g.stride[i],
                      g.dilation[i], *g.pads[i], g.out_hw[i])
        for i, name in enumerate(("height", "width"))
    ]
    return Explanation(g.input_shape, g.output_shape, *axes)
