"""A Server-Sent Events parser with no I/O: feed it bytes as they arrive (in chunks of any size,
split anywhere) or lines, and it returns the messages and comments they complete, as the WHATWG
HTML "event stream interpretation" describes: fields id, event, data (several data lines join
with a newline), retry; comments; lines ended by LF, CR or CRLF; a leading BOM ignored."""

from __future__ import annotations

from dataclasses import dataclass

MAX_PENDING_BYTES = 16 * 1024 * 1024  # a line or message this long is not a hub's stream


class SseProtocolError(ValueError):
    """The stream is not one a hub sends (a line or message over MAX_PENDING_BYTES)."""


@dataclass(frozen=True)
class SseMessage:
    """A dispatched message: `event` ("message" when none was named), `data`, and `id`, the
    last event id in effect (a message without an `id:` field keeps the one before)."""

    event: str
    data: str
    id: str


@dataclass(frozen=True)
class SseComment:
    """A comment line (": heartbeat"), with the one leading space removed."""

    text: str


SseItem = SseMessage | SseComment


class SseParser:
    def __init__(self, max_pending_bytes: int = MAX_PENDING_BYTES) -> None:
        self.last_event_id = ""
        self.retry_ms: int | None = None  # the last valid `retry:` the server sent
        self._max = max_pending_bytes
        self._buffer = bytearray()
        self._skip_lf = False  # the last chunk ended in CR: an LF next belongs to it
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._pending = 0

    def feed(self, chunk: bytes) -> list[SseItem]:
        """The messages and comments completed by `chunk`."""
        if not chunk:
            return []
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        self._buffer += chunk
        items: list[SseItem] = []
        start = 0
        buffer = self._buffer
        while True:
            cr = buffer.find(b"\r", start)
            lf = buffer.find(b"\n", start)
            if cr < 0 and lf < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                end, after = lf, lf + 1
            elif cr + 1 < len(buffer):
                end, after = cr, cr + 2 if buffer[cr + 1 : cr + 2] == b"\n" else cr + 1
            else:  # CR at the very end: the line is done; an LF may follow in the next chunk
                end, after = cr, cr + 1
                self._skip_lf = True
            item = self.feed_line(bytes(buffer[start:end]).decode("utf-8", errors="replace"))
            if item is not None:
                items.append(item)
            start = after
        del self._buffer[:start]
        if len(self._buffer) > self._max:
            raise SseProtocolError(f"an event stream line over {self._max} bytes")
        return items

    def feed_line(self, line: str) -> SseItem | None:
        """One line without its end; the message it completes (a blank line), a comment, or
        None."""
        if not self._started:
            self._started = True
            line = line.removeprefix("\ufeff")
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return SseComment(line[1:].removeprefix(" "))
        name, colon, value = line.partition(":")
        if colon:
            value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
            self._pending += len(value)
            if self._pending > self._max:
                raise SseProtocolError(f"an event stream message over {self._max} bytes")
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None  # other field names are ignored, as the specification says

    def _dispatch(self) -> SseMessage | None:
        data, event = self._data, self._event
        self._data, self._event, self._pending = [], "", 0
        if not data:
            return None  # an event with no data line is not dispatched
        return SseMessage(event or "message", "\n".join(data), self.last_event_id)
