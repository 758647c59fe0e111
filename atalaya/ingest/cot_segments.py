"""Cutting a CoT byte stream, or many small CoT files at once, into events (vectorised over the bytes)."""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from atalaya.ingest.base import MAX_LINE_BYTES, Reject

I64 = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
U8 = npt.NDArray[np.uint8]

BLOCK_BYTES = 1 << 20
"""Bytes read from the input per step."""

MAX_EVENT_BYTES = MAX_LINE_BYTES
"""An event longer than this is rejected unread (bounded memory on hostile input)."""

# ---------------------------------------------------------------------------------------------
# Byte-stream segmentation
# ---------------------------------------------------------------------------------------------

EVENT_START = re.compile(rb"<event[\s>/]")
_XML_DECL_ENC = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


class Utf8Recoder:
    """Wraps a UTF-16/32 byte stream and serves it as UTF-8 (so the byte splitter applies)."""

    def __init__(self, raw: IO[bytes], encoding: str) -> None:
        self._text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            return self._pending + self._text.read().encode("utf-8")
        while len(self._pending) < size:
            chunk = self._text.read(max(size // 2, 4096))
            if not chunk:
                break
            self._pending += chunk.encode("utf-8")
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


def detect_encoding(head: bytes) -> tuple[str, bool]:
    """Encoding of the stream from its BOM or XML declaration; ``True`` if it must be re-coded."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32", True
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", True
    if head[:4] == b"<\x00?\x00" or head[:4] == b"<\x00e\x00":
        return "utf-16-le", True
    if head[:4] == b"\x00<\x00?" or head[:4] == b"\x00<\x00e":
        return "utf-16-be", True
    m = _XML_DECL_ENC.search(head[:4096])
    if m:
        name = m.group(1).decode("ascii").lower()
        try:
            codecs.lookup(name)
        except LookupError:
            return "utf-8", False
        return name, False
    return "utf-8", False


@dataclass(frozen=True, kw_only=True)
class Block:
    """The events cut from one stretch of input."""

    buf: bytes
    """The input the offsets refer to."""
    starts: I64
    """Offset of each event's ``<event`` tag in ``buf``."""
    stops: I64
    """Offset just past each event (after ``</event>``, or where the next event starts when unterminated)."""
    lines: I64
    """1-based line of each event's ``<event`` tag."""
    complete: BoolArray
    """Whether each event ended with ``</event>``."""
    rejects: list[Reject]
    """Events rejected unread (over-long)."""
    nread: int
    """Input bytes consumed."""
    line_shift: I64 | None = None
    """Events of many files (:func:`segment_files`): per event, its line in the joined files less its line in its
    own file (``None``: one input, lines are the input's own)."""

    def raw(self, i: int) -> bytes:
        """The bytes of event ``i`` (maybe truncated when the stream was)."""
        return self.buf[int(self.starts[i]) : int(self.stops[i])]


_AFTER_NAME = np.zeros(256, dtype=np.bool_)
_AFTER_NAME[list(b" \t\n\r\x0b\x0c>/")] = True  # what may follow "<event": \s, ">" or "/"


def tag_offsets(a: U8) -> tuple[I64, I64]:
    """Offsets of every ``<event`` start tag and every ``</event>`` in the bytes ``a`` (vectorised)."""
    lt = np.flatnonzero(a == 60)
    cand = lt[lt + 6 < a.size]
    cand = cand[a[cand + 1] == ord("e")]  # cheap first cut: most tags are not events
    for k, ch in enumerate(b"vent", start=2):
        cand = cand[a[cand + k] == ch]
    starts = cand[_AFTER_NAME[a[cand + 6]]]
    cand = lt[lt + 8 <= a.size]
    cand = cand[a[cand + 1] == ord("/")]
    for k, ch in enumerate(b"event>", start=2):
        cand = cand[a[cand + k] == ch]
    return starts.astype(np.int64, copy=False), cand.astype(np.int64, copy=False)


def segments(fh: Any, *, block: int = BLOCK_BYTES) -> Iterator[Block]:
    """Cut the byte stream into events, one :class:`Block` per input block (vectorised)."""
    buf = b""
    base_line = 1  # line number at buf[0]
    skipping = False  # inside an over-long event: drop bytes until the next <event
    eof = False
    empty_i = np.zeros(0, dtype=np.int64)
    while not eof:
        data = fh.read(block)
        eof = not data
        buf = buf + data if buf else data
        a = np.frombuffer(buf, dtype=np.uint8)
        starts, ends = tag_offsets(a)
        newlines = np.flatnonzero(a == 10)
        rejects: list[Reject] = []
        if starts.size == 0:
            keep = len(buf) if eof else max(0, len(buf) - 6)
            stops, lines, complete = empty_i, empty_i, np.zeros(0, dtype=np.bool_)
        else:
            skipping = False
            nxt = np.append(starts[1:], len(buf))
            j = np.searchsorted(ends, starts, side="left")
            end = np.where(j < ends.size, ends[np.minimum(j, max(ends.size - 1, 0))] if ends.size else 0, -1)
            complete = (end >= 0) & (end < nxt)
            stops = np.where(complete, end + 8, nxt)
            keep = len(buf) if eof else max(int(stops[-1]), len(buf) - 6)  # a "<eve" may be cut at the end
            if not eof and not complete[-1]:
                if len(buf) - starts[-1] <= MAX_EVENT_BYTES:
                    keep = int(starts[-1])  # the last event continues in the next block
                    starts, stops, complete = starts[:-1], stops[:-1], complete[:-1]
                else:
                    skipping = True
                    keep = max(0, len(buf) - 6)
            lines = base_line + np.searchsorted(newlines, starts, side="left").astype(np.int64)
            too_long = (stops - starts) > MAX_EVENT_BYTES
            if too_long.any():
                for i in np.flatnonzero(too_long).tolist():
                    rejects.append(
                        Reject(
                            src_rec=int(lines[i]),
                            reason=f"event longer than {MAX_EVENT_BYTES} bytes; skipped",
                            raw=Reject.excerpt(buf[starts[i] : starts[i] + 512]),
                        )
                    )
                ok = ~too_long
                starts, stops, complete, lines = starts[ok], stops[ok], complete[ok], lines[ok]
        if skipping:
            keep = max(keep, len(buf) - 6)
        base_line += int(np.searchsorted(newlines, keep, side="left"))
        yield Block(
            buf=buf, starts=starts, stops=stops, lines=lines, complete=complete, rejects=rejects, nread=len(data)
        )
        buf = buf[keep:]


def segment_files(datas: Sequence[bytes]) -> tuple[Block, I64]:
    """Cut many whole files into the events of one :class:`Block`, each file on its own.

    The files are laid end to end with a newline between them, so the block's ``lines`` count lines across all of
    them; the second value is the line in the block of each file's first line. An event never runs past the end
    of its file (it is cut there, unterminated), and an ``<event`` tag at the very end of a file is no event,
    exactly as when each file is read alone by :func:`segments`.
    """
    sizes = np.fromiter((len(d) for d in datas), dtype=np.int64, count=len(datas))
    file_lo = np.cumsum(sizes + 1) - (sizes + 1)
    file_hi = file_lo + sizes
    buf = b"\n".join(datas)
    a = np.frombuffer(buf, dtype=np.uint8)
    starts, ends = tag_offsets(a)
    owner = np.searchsorted(file_lo, starts, side="right") - 1
    inside = starts + 6 < file_hi[owner]  # the byte after "<event" is the file's own
    starts, owner = starts[inside], owner[inside]
    newlines = np.flatnonzero(a == 10)
    first_lines = 1 + np.searchsorted(newlines, file_lo, side="left").astype(np.int64)
    lines = 1 + np.searchsorted(newlines, starts, side="left").astype(np.int64)
    nxt = np.minimum(np.append(starts[1:], len(buf)), file_hi[owner])
    j = np.searchsorted(ends, starts, side="left")
    end = ends[np.minimum(j, ends.size - 1)] if ends.size else np.zeros(starts.size, dtype=np.int64)
    complete = (j < ends.size) & (end < nxt)
    stops = np.where(complete, end + 8, nxt)
    shift = first_lines[owner] - 1
    rejects: list[Reject] = []
    too_long = (stops - starts) > MAX_EVENT_BYTES
    if too_long.any():
        for i in np.flatnonzero(too_long).tolist():
            rejects.append(
                Reject(
                    src_rec=int(lines[i]),
                    reason=f"event longer than {MAX_EVENT_BYTES} bytes; skipped",
                    raw=Reject.excerpt(buf[starts[i] : starts[i] + 512]),
                )
            )
        ok = ~too_long
        starts, stops, complete, lines, shift = starts[ok], stops[ok], complete[ok], lines[ok], shift[ok]
    blk = Block(
        buf=buf,
        starts=starts,
        stops=stops,
        lines=lines,
        complete=complete,
        rejects=rejects,
        nread=int(sizes.sum()),
        line_shift=shift,
    )
    return blk, first_lines
