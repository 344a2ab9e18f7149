"""Structured output on each server: how the constraint in force (structured_specs.py) is
sent, and why a server cannot apply one. Only the constraint leverchat would apply is sent
(the first set of json_schema, grammar, regex, json_mode); the others are ignored locally too.

Each mapping cites the documentation it follows:

- vLLM (https://docs.vllm.ai/en/latest/features/structured_outputs/): ``response_format``
  (OpenAI's json_object / json_schema) for JSON, and the ``structured_outputs`` extra body
  field (``regex``, ``grammar``: GBNF/EBNF or Lark) that replaced ``guided_regex`` and
  ``guided_grammar`` in v0.12.
- SGLang (https://docs.sglang.ai/advanced_features/structured_outputs.html): ``response_format``
  for JSON, and the extra fields ``regex`` and ``ebnf`` (GBNF-style EBNF).
- llama-server (tools/server/README.md): ``json_schema`` (a schema object; ``{}`` is any JSON)
  and ``grammar`` (GBNF only); no regular expressions.
- Ollama (docs/api.md, "format"): ``"json"`` or a JSON Schema object; no grammars.
- OpenAI (API reference, chat/create): ``response_format`` with ``json_object`` or
  ``json_schema``; no regex or grammar.
- TGI (docs "Guidance"): ``response_format`` ``{"type": "json_object", "value": schema}`` on the
  Messages API; its regex grammar exists only on /generate.
- transformers serve: no structured output (unknown body fields are refused).
"""

from __future__ import annotations

import json
from typing import Any

from leverchat.structured_specs import active_constraint


def _schema(text: str) -> Any:
    return json.loads(text)


def _openai_json(name: str, text: str) -> dict[str, Any]:
    if name == "json_mode":
        return {"response_format": {"type": "json_object"}}
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": _schema(text), "strict": True},
        }
    }


def structured_fields(server: str, levers: Any) -> dict[str, Any]:
    """The body fields that carry the constraint in force to ``server`` ({} when none is set,
    or when this server cannot apply it: it is then listed as unavailable)."""
    found = active_constraint(levers)
    if found is None:
        return {}
    name, text = found
    if server in ("vllm", "sglang", "openai") and name in ("json_mode", "json_schema"):
        return _openai_json(name, text)
    if server == "vllm":
        return {"structured_outputs": {"regex" if name == "regex" else "grammar": text}}
    if server == "sglang":
        return {"regex": text} if name == "regex" else {"ebnf": text}
    if server == "llama-server":
        if name == "grammar":
            return {"grammar": text}
        if name == "json_mode":
            return {"json_schema": {"type": "object"}}
        if name == "json_schema":
            return {"json_schema": _schema(text)}
    if server == "ollama" and name in ("json_mode", "json_schema"):
        return {"format": "json" if name == "json_mode" else _schema(text)}
    if server == "tgi" and name in ("json_mode", "json_schema"):
        return {"response_format": {"type": "json_object", "value": _schema(text)}}
    return {}


_NO_REGEX = "{server} has no regular-expression constraint"
_NO_GRAMMAR = "{server} has no grammar constraint"


def structured_unavailable(server: str, label: str) -> dict[str, str]:
    """lever name -> why ``server`` cannot apply it (the panel and `ask` show the reason)."""
    reasons: dict[str, dict[str, str]] = {
        "vllm": {},
        "sglang": {},
        "llama-server": {
            "regex": "llama-server has no regular-expression constraint: write it as a GBNF "
            "grammar",
        },
        "ollama": {"regex": _NO_REGEX, "grammar": _NO_GRAMMAR},
        "openai": {"regex": _NO_REGEX, "grammar": _NO_GRAMMAR},
        "tgi": {
            "regex": "TGI takes a regex grammar only on its /generate route, not in chat",
            "grammar": _NO_GRAMMAR,
        },
        "transformers": {
            name: "transformers serve has no structured output"
            for name in ("json_mode", "json_schema", "regex", "grammar")
        },
    }
    return {name: reason.format(server=label) for name, reason in reasons.get(server, {}).items()}
