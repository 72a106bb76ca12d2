"""Reading image files safely: decoding with a pixel limit, conversion to 8-bit RGB, content digests, and results
memoised on them (`ContentMemo`).

A leaf module: imports only `neipalette.errors`. Every unreadable file is a one-line `DatasetError`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Generic, Iterator, TypeVar

import numpy as np
from PIL import Image, ImageFile, ImageOps

from neipalette.errors import DatasetError

MAX_PIXELS = 120_000_000  # above any camera photo (48 MP phones included); a header claiming more is a bomb


def _fail(message: str) -> DatasetError:
    return DatasetError(message)


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (memoised on path, size and mtime); DatasetError when it cannot be read."""
    try:
        stat = os.stat(path)
        return _digest(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    except FileNotFoundError:
        raise _fail(f"image {path} not found (deleted or moved after the dataset was checked?); "
                    "restore the file, then rerun (a benchmark continues with --resume)") from None
    except PermissionError:
        raise _fail(f"image {path} cannot be read (permission denied); make it readable") from None


@functools.lru_cache(maxsize=65536)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()



_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
_ALPHA = ("RGBA", "LA", "La", "RGBa", "PA")
@contextmanager
def _strict_decoding() -> Iterator[None]:
    """Truncated files fail (whatever `ImageFile.LOAD_TRUNCATED_IMAGES` says elsewhere); our own pixel
    limit replaces Pillow's warning."""
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _check_pixels(size: tuple[int, int], what: str) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise _fail(
            f"{what} claims {width}x{height} pixels (over {MAX_PIXELS:,}), a possible decompression bomb; "
            "replace it with a normal-size image"
        )
    if width < 1 or height < 1:
        raise _fail(f"{what} has no pixels ({width}x{height}); replace it with a real image")


def decode_image(path: Path, what: str, *, verify: bool = False) -> Image.Image:
    """Open `path` and decode it fully, checking the header's pixel count before anything is decoded.

    `what` names the file in error messages. Raises DatasetError (one line) for any unreadable file.
    """
    try:
        with _strict_decoding():
            if verify:  # structure and checksums (catches a PNG without its end); leaves the file unusable
                with Image.open(path) as probe:
                    _check_pixels(probe.size, what)
                    probe.verify()
            with Image.open(path) as img:
                _check_pixels(img.size, what)
                img.load()
            return img
    except DatasetError:
        raise
    except Image.DecompressionBombError:
        raise _fail(
            f"{what} claims an absurd pixel count (decompression bomb); replace it with a normal-size image"
        ) from None
    except Image.UnidentifiedImageError:
        raise _fail(f"{what} is not an image Pillow can read; replace it with a PNG or JPEG") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure means a damaged file
        raise _fail(
            f"{what} is corrupt or truncated ({type(exc).__name__}: {exc}); re-export or replace it"
        ) from None


def _to_8bit_gray(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit grayscale to 8-bit L, mapping full scale to 255 (65535 -> 255, 257*k -> k)."""
    arr = np.asarray(img, dtype=np.float64)
    if img.mode in _SIXTEEN_BIT or (img.mode == "I" and img.format == "PNG"):
        full = 65535.0
    elif img.mode == "F" and arr.size and arr.max() <= 1.0:
        full = 1.0
    else:
        full = 65535.0 if arr.size and arr.max() > 255 else 255.0
    return Image.fromarray(np.clip(np.rint(arr * (255.0 / full)), 0, 255).astype(np.uint8), "L")


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag (phone photos), as image viewers do; a damaged EXIF block is ignored.
    In place, so the image keeps its `format` (16-bit PNG scaling depends on it)."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # noqa: BLE001 - metadata only: never reject an image for it
        pass
    return img


def to_rgb(img: Image.Image, *, upright: bool = True) -> Image.Image:
    """Any decoded Pillow image as 8-bit RGB; transparency is composited over white.

    `upright`: apply the EXIF orientation tag (phone photos), as image viewers do.
    """
    if upright and img.format:
        img = _upright(img)
    if img.mode in _SIXTEEN_BIT or img.mode in ("I", "F"):
        img = _to_8bit_gray(img)
    if img.mode in ("P", "L", "RGB") and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in _ALPHA:
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA"))
    return img.convert("RGB")


def load_rgb(path: Path) -> Image.Image:
    """Open an image as 8-bit RGB: grayscale, palette, RGBA (over white) and 16-bit are converted.

    Raises DatasetError for a missing, corrupt, truncated or absurdly large (decompression bomb) file.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(f"image {path} not found; add the file or fix the path")
    img = decode_image(path, f"image {path}", verify=False)
    try:
        return to_rgb(img)
    except (ValueError, OSError) as exc:
        raise _fail(
            f"image {path} has mode {img.mode} that cannot be converted to RGB ({exc}); save it as RGB"
        ) from None


T = TypeVar("T")


class ContentMemo(Generic[T]):
    """`compute(load_rgb(path))` memoised on the file's content digest: the same image under another path, or a
    repeated fit over the same images, is computed once; a file changed in place is computed afresh."""

    def __init__(self, compute: Callable[[Image.Image], T]) -> None:
        self._compute = compute
        self._cache: dict[str, T] = {}

    def __call__(self, path: str | Path) -> T:
        path = Path(path)
        key = file_digest(path)
        if key not in self._cache:
            self._cache[key] = self._compute(load_rgb(path))
        return self._cache[key]

    def clear(self) -> None:
        self._cache.clear()
