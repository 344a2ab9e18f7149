"""A reply drawn as tinted tokens while the token inspector is on.

The tinted body sits in the reply in place of its Markdown (which is hidden, not removed, so
turning the inspector off shows it again unchanged). Plain text on purpose: each token keeps
its own tint, which Markdown's layout would merge, split or hide (a ``**`` token has no glyph).
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from leverchat.ui.widgets.messages_view import ReplyView


class TintedBody(Static):
    DEFAULT_CSS = """
    TintedBody {
        height: auto;
        margin: 0;
        padding: 0;
    }
    """


def tinted_body(view: ReplyView) -> TintedBody | None:
    found = view.query(TintedBody)
    return found.first() if found else None


def show(view: ReplyView, content: Content) -> TintedBody:
    """Show ``content`` in place of the reply's Markdown."""
    body = tinted_body(view)
    if body is None:
        body = TintedBody(content, classes="reply-tinted")
        view.mount(body, before=view.query_one(".reply-status"))
    else:
        body.update(content)
    for markdown in view.query(".reply-body"):
        markdown.display = False
    return body


def hide(view: ReplyView) -> None:
    """Back to the reply's own rendering."""
    for body in view.query(TintedBody):
        body.remove()
    for markdown in view.query(".reply-body"):
        markdown.display = True
