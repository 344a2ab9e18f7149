"""Editors that draw control characters as visible glyphs, never raw.

Textual's TextArea and Input write their text to the terminal as it is: a system prompt or a
recalled message holding ``ESC ]0;...BEL`` retitled the window, OSC 52 wrote the clipboard and
``ESC [6n`` made the terminal type its answer into the app. Here every character of the
:data:`leverchat.safetext.UNSAFE` set is drawn as one visible one-cell glyph
(:func:`leverchat.safetext.visible_glyphs`) while the text itself (what is saved or sent) stays
as it is.

The glyph text has the same length as the real text, so every column index means the same in
both; what must change is every place that measures cells, or the cursor would drift (a raw
control character is zero cells wide, its glyph one):

- TextArea measures and wraps the lines its document hands out (``lines``, ``get_line``,
  ``doc[i]``, ``get_size``), and draws ``get_line``. :class:`VisibleDocument` hands out the glyph
  lines there, while ``text``, ``get_text_range`` and every edit keep using the real lines.
- Input draws ``_value`` and measures in ``_position_to_cell`` and ``_cell_offset_to_index``
  (Textual 8.2.8, pinned in pyproject.toml); :class:`VisibleInput` does all three on the glyph
  text. tests/ui/test_visible_editors.py checks the cursor cell in both widgets.
"""

from __future__ import annotations

import re
from typing import overload

from rich.cells import cell_len, get_character_cell_size
from rich.text import Text
from textual.document._document import EditResult, Location
from textual.expand_tabs import expand_tabs_inline
from textual.geometry import Size, clamp
from textual.widgets import Input, TextArea
from textual.widgets.text_area import Document, DocumentNavigator, WrappedDocument

from leverchat.safetext import visible_glyphs

# The only line breaks of an editor's text: Textual's own newline styles.
_NEWLINE = re.compile(r"\r\n|\r|\n")


class VisibleDocument(Document):
    """A plain-text document whose lines, as read for drawing and measuring, are glyph lines."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        # Split only at the text's own newline: Document uses str.splitlines, which also splits
        # at \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029, so ``text`` came back with newlines
        # there, and saving the editor changed a system prompt nobody edited. Those characters
        # stay in their line, drawn as glyphs. (Typed or pasted text is split as Textual does.)
        self._lines = text.split(self.newline)

    def replace_range(self, start: Location, end: Location, text: str) -> EditResult:
        """Document.replace_range, splitting the inserted text only at real newlines: typed or
        pasted \\u2028, \\x85 or \\x1c stay in their line as glyphs, as loaded text does,
        so what is sent is exactly what was typed."""
        top, bottom = sorted((start, end))
        top_row, top_column = top
        bottom_row, bottom_column = bottom
        insert_lines = _NEWLINE.split(text)
        lines = self._lines
        replaced_text = self.get_text_range(top, bottom)
        after = lines[bottom_row][bottom_column:] if bottom_row < len(lines) else ""
        before = lines[top_row][:top_column] if top_row < len(lines) else ""
        insert_lines[0] = before + insert_lines[0]
        destination_column = len(insert_lines[-1])
        insert_lines[-1] += after
        lines[top_row : bottom_row + 1] = insert_lines
        return EditResult((top_row + len(insert_lines) - 1, destination_column), replaced_text)

    @property
    def lines(self) -> list[str]:
        return [visible_glyphs(line) for line in self._lines]

    def get_line(self, index: int) -> str:
        return visible_glyphs(self._lines[index])

    @overload
    def __getitem__(self, line_index: int) -> str: ...

    @overload
    def __getitem__(self, line_index: slice) -> list[str]: ...

    def __getitem__(self, line_index: int | slice) -> str | list[str]:
        if isinstance(line_index, slice):
            return [visible_glyphs(line) for line in self._lines[line_index]]
        return visible_glyphs(self._lines[line_index])

    def get_size(self, tab_width: int) -> Size:
        lines = self.lines
        width = max((cell_len(line.expandtabs(tab_width)) for line in lines), default=0)
        return Size(width, len(lines))


class VisibleTextArea(TextArea):
    """A TextArea that shows control, bidi and zero-width characters as glyphs."""

    def _set_document(self, text: str, language: str | None) -> None:
        super()._set_document(text, language)
        if type(self.document) is Document:  # plain text; a syntax-aware one is left alone
            # The same three objects TextArea._set_document builds, on a VisibleDocument.
            self.document = VisibleDocument(text)
            self.wrapped_document = WrappedDocument(self.document, tab_width=self.indent_width)
            self.navigator = DocumentNavigator(self.wrapped_document)


class VisibleInput(Input):
    """An Input that shows control, bidi and zero-width characters (and newlines) as glyphs."""

    @property
    def _value(self) -> Text:
        if self.password:
            return super()._value
        text = Text(visible_glyphs(self.value), no_wrap=True, overflow="ignore", end="")
        if self.highlighter is not None:
            text = self.highlighter(text)
        return text

    def _position_to_cell(self, position: int) -> int:
        return cell_len(expand_tabs_inline(visible_glyphs(self.value[:position]), 4))

    def _cell_offset_to_index(self, offset: int) -> int:
        # Input._cell_offset_to_index, measuring the glyphs that are drawn.
        cell_offset = 0
        scroll_x, _ = self.scroll_offset
        offset += scroll_x
        shown = visible_glyphs(self.value)
        for index, char in enumerate(shown):
            cell_width = get_character_cell_size(char)
            if cell_offset <= offset < cell_offset + cell_width:
                return index
            cell_offset += cell_width
        return clamp(offset, 0, len(shown))
