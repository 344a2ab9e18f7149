"""YAML presets, parsed with bounded work.

PyYAML's safe loader still expands aliases: a 356-byte file of nested aliases ("billion
laughs") becomes a value of billions of items, and every walk of it (a report, a repr) takes
minutes and gigabytes. It also composes nested collections by recursion. Presets never need
aliases and never nest more than a level or two, so this loader refuses aliases outright and
stops at :data:`~leverchat.bounded.MAX_NESTING` levels, before anything is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent
from yaml.nodes import Node

from leverchat.bounded import MAX_NESTING, nesting_message
from leverchat.importers.common import ProfileImportError


class _Refused(ComposerError):
    """Valid YAML that a preset must not use (an alias, deep nesting)."""


class _PresetLoader(yaml.SafeLoader):
    """SafeLoader without aliases and with a nesting limit."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _Refused(
                None,
                None,
                f"uses the YAML alias *{event.anchor}; presets do not need aliases (a few "
                "hundred bytes of nested aliases expand to gigabytes): write the values out",
                event.start_mark,
            )
        self._depth += 1
        if self._depth > MAX_NESTING:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise _Refused(None, None, nesting_message(), mark)
        try:
            return cast(Node, super().compose_node(parent, index))
        finally:
            self._depth -= 1


def load_yaml(text: str, path: Path) -> Mapping[str, Any]:
    """The mapping at the top of a YAML preset; ProfileImportError naming the file otherwise."""
    try:
        data = yaml.load(text, Loader=_PresetLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        prefix = "" if isinstance(error, _Refused) else "not valid YAML: "
        raise ProfileImportError(
            f"{prefix}{error.problem or error}",
            path=path,
            line=mark.line + 1 if mark is not None else None,
            column=mark.column + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ProfileImportError(f"not valid YAML: {reason}", path=path) from None
    except RecursionError:  # the nesting limit keeps well below it: belt and braces
        raise ProfileImportError(nesting_message(), path=path) from None
    if not isinstance(data, Mapping):
        raise ProfileImportError(
            "not a recognised file: expected an Ollama Modelfile, or YAML with settings "
            f"(found {type(data).__name__})",
            path=path,
        )
    return data
