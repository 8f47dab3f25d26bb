"""`wide()` says where answers came from: once under a model's name when they all came from one place, else under
each answer."""

from __future__ import annotations

from typing import Any

from opencode_lab.core.schema import results_frame
from opencode_lab.frontends.wide import wide


def row(prompt_id: int, model: str, **where: Any) -> dict[str, Any]:
    answer = f"{model}{prompt_id}"
    return {"prompt": f"p{prompt_id}", "prompt_id": prompt_id, "model": model, "response": answer, **where}


def test_answers_from_one_place_say_it_once_in_the_header() -> None:
    view = wide(results_frame([row(i, "claude", region="eu-central-1") for i in range(2)]))
    assert view.headers["claude"] == "via eu-central-1"
    assert "via" not in view.to_html().split("</thead>")[1]
    assert "[via" not in repr(view)


def test_answers_from_several_upstreams_say_each_its_own() -> None:
    rows = [
        row(0, "llama", upstream_provider="Groq", region="us-east-1"),
        row(1, "llama", upstream_provider="Together", region="us-east-1"),
        row(0, "local", region="in-process"),
        row(1, "local", region="in-process"),
    ]
    view = wide(results_frame(rows))
    assert "via" not in view.headers["llama"] and view.headers["local"] == "via in-process"
    assert list(view.frame["llama"]) == ["llama0 [via Groq · us-east-1]", "llama1 [via Together · us-east-1]"]
    assert "via Groq · us-east-1</div>" in view.to_html()


def test_nothing_is_said_where_nothing_is_known() -> None:
    view = wide(results_frame([row(0, "m"), row(1, "m")]))
    assert view.headers["m"] == "" and "via" not in view.to_html() and list(view.frame["m"]) == ["m0", "m1"]
