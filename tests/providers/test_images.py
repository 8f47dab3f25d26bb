"""Image inputs: read once at the edge, sent in each provider's native form, keyed by content."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image as PILImage

from opencode_lab import ChatRequest, InvalidRequestError, Lab
from opencode_lab.core import content
from opencode_lab.core.content import Image
from opencode_lab.testing import FaultServer
from opencode_lab.testing.anthropic_server import AnthropicServer
from opencode_lab.testing.gemini_server import GeminiServer

PROVIDERS = ("openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest", "gemini/gemini-2.0-flash")
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "dot.png"
    path.write_bytes(PNG)
    return path


def asking(image: object, text: str = "what is this?") -> list[dict[str, object]]:
    return [{"role": "user", "content": [text, {"type": "image", "image": image}]}]


# -- reading images -------------------------------------------------------------------------------


def test_an_image_from_a_path_is_read_with_its_type(png: Path) -> None:
    image = Image.of(png)
    assert (image.mime_type, image.data, image.url) == ("image/png", PNG, "")


def test_bytes_a_data_url_and_a_pil_image_are_images_too() -> None:
    from_bytes = Image.of(PNG)
    from_url = Image.of("data:image/png;base64," + base64.b64encode(PNG).decode())
    from_pil = Image.of(PILImage.new("RGB", (2, 2), "red"))
    assert from_bytes == from_url
    assert from_pil.mime_type == "image/png" and PILImage.open(__import__("io").BytesIO(from_pil.data)).size == (2, 2)


def test_an_http_url_is_kept_for_the_provider_to_fetch() -> None:
    image = Image.of("https://example.org/cat.jpg")
    assert (image.mime_type, image.data, image.url) == ("image/jpeg", b"", "https://example.org/cat.jpg")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (b"not an image at all", "is not a PNG, JPEG, GIF or WebP image"),
        (b"", "is empty"),
        ("data:image/png,abc", "without ';base64,' data"),
        (Path("/nowhere/cat.png"), "cannot be read"),
        (3.14, "must be a path, bytes, a PIL image or a URL"),
    ],
)
def test_a_bad_image_is_refused_before_sending(source: object, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        ChatRequest.build(asking(source))


def test_an_oversized_image_is_refused(png: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(content, "MAX_IMAGE_BYTES", 10)
    with pytest.raises(InvalidRequestError, match="over the 10-byte limit"):
        ChatRequest.build(asking(png))


def test_only_a_user_message_may_hold_an_image(png: Path) -> None:
    with pytest.raises(InvalidRequestError, match="only user messages may"):
        ChatRequest.build([{"role": "user", "content": "hi"}, {"role": "assistant", "content": [png]}])


def test_an_image_without_text_is_a_valid_user_message(png: Path) -> None:
    request = ChatRequest.build([{"role": "user", "content": [png]}])
    assert request.images == (Image.of(png),)


def test_openai_style_parts_are_understood(png: Path) -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    parts = [{"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": url}}]
    message = ChatRequest.build([{"role": "user", "content": parts}]).messages[0]
    assert message.content == "what?" and message.parts == ("what?", Image.of(png))
    assert message.to_dict()["content"][1] == {"type": "image_url", "image_url": {"url": url}}


# -- sending them ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vendors() -> Iterator[tuple[AnthropicServer, GeminiServer]]:
    with AnthropicServer() as anthropic, GeminiServer() as gemini:
        yield anthropic, gemini


@pytest.fixture
def lab(fault: FaultServer, vendors, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    anthropic, gemini = vendors
    for server, model in ((fault, "gpt-4o-mini"), (anthropic, "claude-3-5-haiku-latest"), (gemini, "gemini-2.0-flash")):
        server.reset()
        server.configure(models=[model, "o3-mini"])
    for var, value in {
        "OPENAI_API_KEY": "sk-test-images-openai-0123",
        "OPENAI_BASE_URL": fault.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-test-images-0123",
        "ANTHROPIC_BASE_URL": anthropic.base_url,
        "GEMINI_API_KEY": "AIza-test-images-0123",
        "GEMINI_BASE_URL": gemini.base_url,
    }.items():
        monkeypatch.setenv(var, value)
    with Lab.from_env() as lab:
        yield lab


def test_an_image_from_a_file_reaches_each_server_in_its_native_form(lab: Lab, png: Path, fault, vendors) -> None:
    for model in PROVIDERS:
        assert lab.chat(asking(png), model=model, cache=False).text == "echo: what is this?"
    anthropic, gemini = vendors
    # image_url data URL, Anthropic base64 source block, Gemini inlineData: each decoded back to the file's bytes
    assert [s.log[-1]["images"] for s in (fault, anthropic, gemini)] == [[digest(PNG)]] * 3


def test_the_cache_keys_an_image_by_content_not_by_path(lab: Lab, png: Path, tmp_path: Path) -> None:
    copy = tmp_path / "renamed.png"
    copy.write_bytes(PNG)
    other = tmp_path / "other.png"
    PILImage.new("RGB", (3, 1), "blue").save(other)
    lab.chat(asking(png), model=PROVIDERS[0])
    assert lab.chat(asking(copy), model=PROVIDERS[0]).cached
    assert not lab.chat(asking(other), model=PROVIDERS[0]).cached


def test_a_model_the_catalog_marks_text_only_is_refused_before_sending(lab: Lab, png: Path, fault) -> None:
    with pytest.raises(InvalidRequestError, match="model 'openai/o3-mini' does not accept images"):
        lab.chat(asking(png), model="openai/o3-mini")
    assert [e["path"] for e in fault.log] == ["/v1/models"]


def test_a_local_model_is_refused_images_before_sending(make_lab, png: Path, tmp_path: Path) -> None:
    lab = make_lab(f'[models.tiny]\nprovider = "local"\npath = "{tmp_path / "absent.gguf"}"\n')
    with pytest.raises(InvalidRequestError, match="model 'local/tiny' does not accept images"):
        lab.chat(asking(png), model="local/tiny")


# -- compare(images=...) --------------------------------------------------------------------------


def test_compare_attaches_each_rows_image_from_a_column(lab: Lab, png: Path, tmp_path: Path, fault, vendors) -> None:
    other = tmp_path / "other.png"
    PILImage.new("RGB", (3, 1), "blue").save(other)
    prompts = pd.DataFrame({"prompt": ["first?", "second?", "none?"], "picture": [png, other, None]})
    frame = lab.compare(prompts, list(PROVIDERS), images="picture", progress=False, cache=False)
    assert frame.error_type.isna().all() and list(frame.picture[:3]) == [png] * 3
    anthropic, gemini = vendors
    for server in (fault, anthropic, gemini):
        sent = {
            e["prompt"]: e["images"] for e in server.log if e["path"] != "/v1/models" and e.get("images") is not None
        }
        assert sent == {"first?": [digest(PNG)], "second?": [digest(other.read_bytes())], "none?": []}


def test_compare_refuses_an_images_column_that_does_not_exist(lab: Lab, png: Path, fault) -> None:
    prompts = pd.DataFrame({"prompt": ["what?"], "picture": [png]})
    with pytest.raises(InvalidRequestError, match="images='photo' is not a column of the prompts"):
        lab.compare(prompts, PROVIDERS[0], images="photo", progress=False)
    assert [e["path"] for e in fault.log] == ["/v1/models"]
