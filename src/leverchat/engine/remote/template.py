"""The model's own chat template, rendered without transformers (jinja2 in the same sandbox
and with the same helpers transformers uses), so that a reply can be continued through
/v1/completions with exactly the prompt the server's chat route would build.

Only found when the server's model id is a folder on this machine (``transformers serve
/path/to/model``, llama-server or vLLM started on a local folder)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from leverchat.engine.types import ChatMessage

Renderer = Callable[[tuple[ChatMessage, ...]], str]


def _special(config: dict[str, Any], name: str) -> str:
    value = config.get(name)
    if isinstance(value, dict):  # older files store AddedToken objects
        value = value.get("content")
    return value if isinstance(value, str) else ""


def _template_text(folder: Path, config: dict[str, Any]) -> str | None:
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, str):
        return template
    if isinstance(template, list):  # named templates: the "default" one
        for entry in template:
            if isinstance(entry, dict) and entry.get("name") == "default":
                text = entry.get("template")
                return text if isinstance(text, str) else None
    return None


def load_renderer(model_id: str) -> Renderer | None:
    """A function rendering messages into the generation prompt, or None when the model's
    template is not readable here (then replies continue through the chat route)."""
    folder = Path(model_id)
    try:
        if not folder.is_dir():
            return None
        config_file = folder / "tokenizer_config.json"
        config: dict[str, Any] = {}
        if config_file.is_file():
            loaded = json.loads(config_file.read_text(encoding="utf-8"))
            config = loaded if isinstance(loaded, dict) else {}
        text = _template_text(folder, config)
    except (OSError, ValueError):
        return None
    if text is None:
        return None
    try:
        template = _environment().from_string(text)
    except Exception:  # a template this jinja cannot compile: no continuation via completions
        return None
    bos, eos = _special(config, "bos_token"), _special(config, "eos_token")

    def render(messages: tuple[ChatMessage, ...]) -> str:
        return str(
            template.render(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=True,
                bos_token=bos,
                eos_token=eos,
            )
        )

    return render


def _environment() -> Any:
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        value: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        # As transformers: jinja's own tojson escapes HTML characters.
        return json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )

    def strftime_now(format: str) -> str:
        return datetime.now().strftime(format)

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = strftime_now
    return environment
