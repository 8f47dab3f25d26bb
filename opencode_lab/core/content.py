"""Rich message content: a message may be a list of text and image parts.

Images are read once, at the edge, into bytes with a MIME type (from a path,
bytes, a PIL image, a ``data:`` URL) or kept as an http(s) URL the provider
fetches itself.  The cache key holds an image's content hash, never its path,
so the same picture under two names is one entry and an edited file is another.
A path is read only if it is a regular file, and never past `MAX_IMAGE_BYTES`
(``stat()`` says 0 for ``/dev/zero`` and a pipe, which would be read forever).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidRequestError
from .files import read_capped
from .params import utf8

_SPACE = re.compile(r"\s")
#: the largest image accepted (Anthropic refuses more than 5 MB, OpenAI 20 MB)
MAX_IMAGE_BYTES = 20 * 1024 * 1024
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True)
class Image:
    """An image part: its bytes and MIME type, or an http(s) ``url`` the provider fetches."""

    mime_type: str
    data: bytes = b""
    url: str = ""

    def __repr__(self) -> str:
        what = self.url or f"{len(self.data)} bytes"
        return f"Image({self.mime_type}, {what})"

    @property
    def digest(self) -> str:
        """What the cache key holds: the content's SHA-256 (a URL's text for a URL image)."""
        return "sha256:" + hashlib.sha256(self.data or self.url.encode()).hexdigest()

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        """A ``data:`` URL of the bytes (or the http URL): the OpenAI ``image_url`` form."""
        return self.url or f"data:{self.mime_type};base64,{self.base64()}"

    @classmethod
    def of(cls, source: object, where: str = "image") -> Image:
        """An image from a path, bytes, a PIL image, a ``data:`` URL or an http(s) URL."""
        if isinstance(source, Image):
            return source
        if isinstance(source, bytes | bytearray | memoryview):
            return cls._from_bytes(bytes(source), where)
        if isinstance(source, str) and source.startswith("data:"):
            return cls._from_data_url(source, where)
        if isinstance(source, str) and source.startswith(("http://", "https://")):
            return cls(_mime_from_name(source) or "image/jpeg", url=utf8(where, source))
        if isinstance(source, str | os.PathLike):
            return cls._from_path(Path(source), where)
        if hasattr(source, "save") and hasattr(source, "mode"):  # a PIL image: sent as PNG, losslessly
            return cls._from_bytes(_png(source, where), where)
        raise InvalidRequestError(f"{where} must be a path, bytes, a PIL image or a URL, not {type(source).__name__}")

    @classmethod
    def _from_bytes(cls, data: bytes, where: str) -> Image:
        if not data:
            raise InvalidRequestError(f"{where} is empty")
        if len(data) > MAX_IMAGE_BYTES:
            raise InvalidRequestError(f"{where} is {len(data)} bytes, over the {MAX_IMAGE_BYTES}-byte limit")
        mime = _sniff(data)
        if mime is None:
            raise InvalidRequestError(f"{where} is not a PNG, JPEG, GIF or WebP image")
        return cls(mime, data)

    @classmethod
    def _from_path(cls, path: Path, where: str) -> Image:
        return cls._from_bytes(read_capped(path, MAX_IMAGE_BYTES, f"{where} {path}"), f"{where} {path}")

    @classmethod
    def _from_data_url(cls, url: str, where: str) -> Image:
        header, comma, payload = url.partition(",")
        if not comma or not header.endswith(";base64"):
            raise InvalidRequestError(f"{where} is a data URL without ';base64,' data")
        if len(payload) * 3 // 4 > MAX_IMAGE_BYTES + 2:  # refused before decoding it
            raise InvalidRequestError(f"{where} is a data URL of over {MAX_IMAGE_BYTES} bytes, the limit")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError(f"{where} is a data URL whose base64 does not decode") from None
        return cls._from_bytes(data, where)


def _png(image: Any, where: str) -> bytes:
    """A PIL image as PNG bytes: colour spaces PNG has no mode for (CMYK, YCbCr, LAB, HSV) become RGB."""
    width, height = getattr(image, "size", (1, 1))
    if not width or not height:
        raise InvalidRequestError(f"{where} is an empty image ({width}x{height})")
    if image.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    try:
        image.save(buffer, format="PNG")
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidRequestError(
            f"{where} is a PIL image of mode {image.mode!r}, which cannot be sent as PNG ({exc}); "
            "convert it first, e.g. image.convert('RGB')"
        ) from None
    return buffer.getvalue()


def _sniff(data: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


_SUFFIX_MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}


def _mime_from_name(name: str) -> str | None:
    return _SUFFIX_MIME.get(name.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower())


Part = str | Image
"""A message part: text, or an image."""


def parts(content: list[Any] | tuple[Any, ...], where: str) -> tuple[Part, ...]:
    """Normalise a list of parts: strings, images (anything `Image.of` takes) or OpenAI-style dicts
    (``{"type": "text", "text"}``, ``{"type": "image_url", "image_url": {"url"}}``, ``{"type": "image", "image"}``).
    Adjacent text parts are kept apart: their order with the images is part of the prompt.  A string that
    is a ``data:`` URL or an http(s) URL alone is an image part (send a URL as text with ``{"type": "text"}``)."""
    out: list[Part] = []
    for i, item in enumerate(content):
        at = f"{where} part {i}"
        if isinstance(item, str) and _is_url(item):
            out.append(Image.of(item.strip(), at))
        elif isinstance(item, str):
            out.append(utf8(at, item))
        elif isinstance(item, Mapping):
            out.append(_dict_part(item, at))
        else:
            out.append(Image.of(item, at))
    if not out:
        raise InvalidRequestError(f"{where} is an empty list of parts")
    return tuple(out)


def _is_url(text: str) -> bool:
    """A ``data:`` URL (never meant as text), or an http(s) URL standing alone."""
    text = text.strip()
    return text.startswith("data:") or (text.startswith(("http://", "https://")) and not _SPACE.search(text))


def _dict_part(item: Mapping[str, Any], where: str) -> Part:
    kind = item.get("type")
    if kind == "text" and isinstance(item.get("text"), str):
        return utf8(where, item["text"])
    if kind == "image_url":
        url = item.get("image_url")
        url = url.get("url") if isinstance(url, Mapping) else url
        if isinstance(url, str):
            return Image.of(url, where)
    if kind == "image" and "image" in item:
        return Image.of(item["image"], where)
    raise InvalidRequestError(
        f"{where} must be text, an image or {{'type': 'text'|'image_url'|'image', ...}}, got {dict(item)!r}"
    )
