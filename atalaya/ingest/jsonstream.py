"""Bounded JSON for the readers: a sliding text window over a byte stream, and a decode that never raises.

A JSON reader holds one window of text (about 1 MiB, more only while one record needs it, never more than
:attr:`~atalaya.ingest.base.ReaderLimits.max_record_bytes`) and decodes one record at a time with
:func:`decode_at`, which reports any failure — bad JSON, a number too long to convert, nesting deeper than
:attr:`~atalaya.ingest.base.ReaderLimits.max_depth` — as a reason instead of an exception.

>>> decode_at('[1, [2, [3]]]', 0, max_depth=3)
([1, [2, [3]]], 13, None)
>>> decode_at('[1, [2, [3]]]', 0, max_depth=2)[2]
'nested deeper than 2 levels'
>>> decode_at('{"a": tru', 0, max_depth=8)[2]
'not valid JSON (Expecting value)'
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any

import numpy as np

__all__ = ["READ_BYTES", "Utf8Window", "decode_at", "depth_exceeds", "finite_number"]

READ_BYTES = 1 << 20
"""Bytes read from the stream at a time."""

_DECODER = json.JSONDecoder()
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def depth_exceeds(text: str, start: int, end: int, max_depth: int) -> bool:
    """Whether the JSON in ``text[start:end]`` nests arrays/objects deeper than ``max_depth``.

    Costs two ``str.count`` calls unless the span holds more than ``max_depth`` brackets.

    >>> depth_exceeds('{"a": "[[[[", "b": [[1]]}', 0, 26, 3), depth_exceeds('[[[1]]]', 0, 7, 2)
    (False, True)
    """
    if text.count("[", start, end) + text.count("{", start, end) <= max_depth:
        return False
    bare = _STRING.sub("", text[start:end]).encode("utf-8", "surrogatepass")
    a = np.frombuffer(bare, dtype=np.uint8)
    step = (np.isin(a, (91, 123)).astype(np.int32)) - np.isin(a, (93, 125)).astype(np.int32)
    return bool(step.size) and int(np.cumsum(step).max()) > max_depth


def decode_at(text: str, pos: int, *, max_depth: int) -> tuple[Any, int, str | None]:
    """Decode the JSON value starting at ``text[pos]``: ``(value, end, None)``, or ``(None, pos, reason)``.

    The reason starts with ``"not valid JSON"`` when the text may just be incomplete (read more and retry).
    """
    try:
        obj, end = _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as e:
        return None, pos, f"not valid JSON ({e.msg})"
    except RecursionError:
        return None, pos, f"nested deeper than {max_depth} levels"
    except ValueError as e:  # an integer of more digits than Python converts
        return None, pos, f"bad number: {e}"
    if depth_exceeds(text, pos, end, max_depth):
        return None, end, f"nested deeper than {max_depth} levels"
    return obj, end, None


def finite_number(v: Any) -> bool:
    """A JSON number that converts to a finite float (not a bool, not a 400-digit integer).

    >>> finite_number(1.5), finite_number(10**400), finite_number(True), finite_number("1")
    (True, False, False, False)
    """
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return abs(float(v)) < float("inf")
    except OverflowError:
        return False


class Utf8Window:
    """A sliding text window over a binary stream (UTF-8, bad bytes replaced, decoded incrementally)."""

    def __init__(self, fh: Any, head: bytes) -> None:
        self.fh = fh
        self.dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = self.dec.decode(head)
        self.eof = False
        self.nbytes = len(head)
        """Bytes read from the stream so far."""

    def more(self, keep_from: int = 0) -> int:
        """Read more, dropping text before ``keep_from``; returns the new position of ``keep_from`` (0)."""
        data = self.fh.read(READ_BYTES)
        self.nbytes += len(data)
        if not data:
            self.eof = True
            self.text = self.text[keep_from:] + self.dec.decode(b"", final=True)
        else:
            self.text = self.text[keep_from:] + self.dec.decode(data)
        return 0

    def drop(self, pos: int) -> int:
        """Forget the text before ``pos``; returns its new position (0)."""
        self.text = self.text[pos:]
        return 0
