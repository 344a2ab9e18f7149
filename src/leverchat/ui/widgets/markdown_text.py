"""The Markdown parser for replies: what it produces is shown visibly, like all other text.

Escaping the reply's source (:func:`leverchat.safetext.visible`) is not enough: Markdown turns
character references into characters, so ``&#x202e;``, ``&rlm;`` or ``&zwj;`` became raw bidi
and zero-width characters after parsing, and a reference split across two streamed chunks
cannot be seen in either chunk. A core rule escapes every token's text after parsing instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

from leverchat.safetext import visible


def reply_parser() -> MarkdownIt:
    """Textual's default "gfm-like" parser, plus :func:`_show_controls` as the last step."""
    parser = MarkdownIt("gfm-like")
    parser.core.ruler.push("leverchat_visible_controls", _show_controls)
    return parser


def _show_controls(state: StateCore) -> None:
    _escape_tokens(state.tokens)


def _escape_tokens(tokens: Iterable[Token]) -> None:
    for token in tokens:
        token.content = visible(token.content)
        if token.children:
            _escape_tokens(token.children)
