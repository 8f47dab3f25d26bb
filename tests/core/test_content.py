"""Images as hostile input: read only from regular files, never past the cap; URLs in a parts list are images."""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from opencode_lab import ChatRequest, InvalidRequestError
from opencode_lab.core import content
from opencode_lab.core.content import MAX_IMAGE_BYTES, Image

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def asking(*parts: object) -> list[dict[str, object]]:
    return [{"role": "user", "content": ["what is this?", *parts]}]


def test_a_device_is_refused_without_reading_it() -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidRequestError, match="/dev/zero is not a regular file"):
        ChatRequest.build(asking(Path("/dev/zero")))
    assert time.perf_counter() - started < 5  # it used to read until MemoryError


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []
    reader = threading.Thread(target=lambda: _capture(outcome, Image.of, fifo), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "opening a FIFO blocked"
    assert isinstance(outcome[0], InvalidRequestError) and "is not a regular file" in str(outcome[0])


def _capture(into: list[BaseException], fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except BaseException as exc:  # what the thread raised is the result under test
        into.append(exc)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="is not a regular file"):
        Image.of(tmp_path)


def test_no_more_than_the_cap_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(PNG + b"\0" * 1000)
    monkeypatch.setattr(content, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(InvalidRequestError, match="over the 100-byte limit"):
        Image.of(big)


def test_a_nul_in_a_path_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError, match="cannot be read"):
        Image.of("cat\0.png")


def test_url_strings_in_a_parts_list_are_image_parts() -> None:
    message = ChatRequest.build(asking(DATA_URL, "https://example.org/cat.jpg")).messages[0]
    assert message.content == "what is this?"
    assert message.parts[1] == Image("image/png", PNG) and message.parts[2].url == "https://example.org/cat.jpg"


def test_a_sentence_with_a_url_stays_text() -> None:
    message = ChatRequest.build(asking("see https://example.org/cat.jpg please")).messages[0]
    assert message.images == ()


def test_a_huge_data_url_in_a_parts_list_is_refused_before_it_is_decoded_or_sent(fault, make_lab) -> None:
    lab = make_lab(f'[providers.e]\nbase_url = "{fault.base_url}"\nmodels = ["echo"]\n')
    huge = "data:image/png;base64," + "A" * (28 * 1024 * 1024)
    with pytest.raises(InvalidRequestError, match=f"data URL of over {MAX_IMAGE_BYTES} bytes"):
        lab.chat(asking(huge), "e/echo")
    assert fault.count() == 0


def test_a_data_url_string_reaches_the_server_as_an_image(fault, make_lab) -> None:
    lab = make_lab(f'[providers.e]\nbase_url = "{fault.base_url}"\nmodels = ["echo"]\n')
    assert lab.chat(asking(DATA_URL), "e/echo").text == "echo: what is this?"


@pytest.mark.parametrize("mode", ["CMYK", "YCbCr", "LAB"])
def test_a_pil_image_in_a_colour_space_png_lacks_is_sent_as_rgb(mode: str) -> None:
    image = Image.of(PILImage.new(mode, (2, 2)))
    assert image.mime_type == "image/png" and PILImage.open(__import__("io").BytesIO(image.data)).mode == "RGB"


@pytest.mark.parametrize(
    ("image", "says"),
    [
        (PILImage.new("RGB", (0, 0)), r"is an empty image \(0x0\)"),
        (PILImage.new("F", (2, 2)), "PIL image of mode 'F', which cannot be sent as PNG"),
    ],
)
def test_a_pil_image_that_cannot_be_sent_is_a_clear_error(image: object, says: str) -> None:
    with pytest.raises(InvalidRequestError, match=says):
        ChatRequest.build(asking(image))
