"""What a training checkpoint keeps so that its model can be rebuilt and fed: the zoo name
and constructor arguments, the input shape, the class names and the input normalisation.

A model's input is ``(image - mean) / std``, where ``image`` holds floats in ``[0, 1]``
(pixels / 255, what ``convolve.io.read_image`` and the dataset loaders give) and ``mean``
and ``std`` hold one value or one per channel. convolve's datasets train on the ``[0, 1]``
images themselves: mean 0, std 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from convolve import _args


@dataclass(frozen=True)
class ModelInfo:
    """A model's description, stored in its training checkpoints (JSON metadata).

    Attributes:
        name: the zoo model (``convolve.models.MODELS``) it was built as; None for others.
        args: the zoo constructor's arguments (``input_shape``, ``num_classes``).
        input_shape: ``(H, W, C)`` of one training image; None when not known yet.
        classes: ``classes[k]`` names class ``k``; None when not known.
        mean, std: the input normalisation, one value or one per channel.
    """

    name: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None
    classes: tuple[str, ...] | None = None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def label(self, index: int) -> str:
        """The name of class ``index`` (its number when the classes are not known)."""
        if self.classes is not None and 0 <= index < len(self.classes):
            return self.classes[index]
        return str(index)

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """``(images - mean) / std`` for images in ``[0, 1]``, ``(..., C)``; float32."""
        images = np.asarray(images, np.float32)
        if self.mean == (0.0,) and self.std == (1.0,):
            return images
        channels = images.shape[-1] if images.ndim else 0
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ValueError(f"the normalisation {name} has {len(values)} values but the "
                                 f"images have {channels} channels; give one value or one "
                                 "per channel")
        return (images - np.float32(self.mean)) / np.float32(self.std)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, meta: Any) -> ModelInfo:
        """Read back ``to_json``'s dict; a ValueError names what is malformed."""
        if not isinstance(meta, Mapping):
            raise ValueError(f"model metadata must be an object; received {meta!r}")
        try:
            shape = meta.get("input_shape")
            classes = meta.get("classes")
            return cls(
                name=None if meta.get("name") is None else str(meta["name"]),
                args=dict(meta.get("args") or {}),
                input_shape=None if shape is None else tuple(int(n) for n in shape),
                classes=None if classes is None else tuple(str(c) for c in classes),
                mean=tuple(float(v) for v in meta.get("mean", (0.0,))),
                std=tuple(float(v) for v in meta.get("std", (1.0,))),
            )
        except (TypeError, ValueError) as error:
            raise ValueError(f"model metadata is malformed ({error}): {meta!r}") from None


def of(model: Any) -> ModelInfo:
    """The model's description: what the zoo or ``fit`` attached, else an empty one."""
    info = getattr(model, "info", None)
    return info if isinstance(info, ModelInfo) else ModelInfo()


def _values(value: Any, name: str) -> tuple[float, ...]:
    array = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"normalization[{name!r}] must be a finite number or one per "
                         f"channel; received {value!r}")
    return tuple(float(v) for v in array)


def for_training(model: Any, images: np.ndarray, *, classes: Sequence[str] | None,
                 normalization: Mapping[str, Any] | None) -> ModelInfo:
    """The model's description once trained on ``images: (N, H, W, C)``: its input shape,
    ``classes`` (else those it had) and ``normalization`` ``{"mean": ..., "std": ...}``
    (else those it had)."""
    info = replace(of(model), input_shape=tuple(int(n) for n in images.shape[1:]))
    if classes is not None:
        if isinstance(classes, str) or not isinstance(classes, Sequence):
            raise TypeError(f"classes must be a list of class names; received "
                            f"{_args.describe(classes)}")
        info = replace(info, classes=tuple(str(c) for c in classes))
    if normalization is not None:
        if not isinstance(normalization, Mapping) or set(normalization) - {"mean", "std"}:
            raise ValueError("normalization must be {'mean': ..., 'std': ...}; received "
                             f"{normalization!r}")
        mean = _values(normalization.get("mean", 0.0), "mean")
        std = _values(normalization.get("std", 1.0), "std")
        if min(std) <= 0:
            raise ValueError(f"normalization['std'] must be > 0; received {std}")
        info = replace(info, mean=mean, std=std)
    return info
