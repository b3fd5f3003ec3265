"""SSE frames, pure."""

from __future__ import annotations

from hub.delivery.sse import comment, frame


def test_frame_has_id_event_and_one_data_line() -> None:
    """A frame is id, event, one data line of JSON, then a blank line; newlines in the data
    stay escaped inside the JSON."""
    out = frame({"text": "two\nlines"}, event="alert.created", event_id="17-0")
    assert out == b'id: 17-0\nevent: alert.created\ndata: {"text":"two\\nlines"}\n\n'


def test_comment_cannot_break_the_stream() -> None:
    """A comment with a newline stays one comment line."""
    assert comment("a\nb") == b": a b\n\n"
