"""The request to branch a reply at one of its tokens: the seam between the token inspector
(which picks the token and what replaces it) and the branches (which continue the reply).

The inspector's table posts :class:`BranchRequested`; the chat screen's branch handler keeps
the reply's first ``token_index`` tokens, puts ``text`` in place of the token at that index
and continues the reply from there with the current levers, as a new version of the reply.
"""

from __future__ import annotations

from textual.message import Message


class BranchRequested(Message):
    """Continue ``reply_id`` from its token ``token_index`` with ``text`` in that token's place.

    ``token_id`` is the vocabulary id when an alternative from the inspector's table was
    picked (the continuation then starts from exactly that token); None when the user typed
    their own text, which is tokenized as it stands.
    """

    def __init__(self, reply_id: str, token_index: int, text: str, token_id: int | None) -> None:
        super().__init__()
        self.reply_id = reply_id
        self.token_index = token_index
        self.text = text
        self.token_id = token_id
