"""The reader role: one verb, ``read``, turning a file into batches of observation columns.

A reader (one module per format in ``atalaya.ingest``) streams a file and
yields :class:`ParsedBatch` objects: columns named as in
:mod:`atalaya.model.observation` plus the records it could not parse
(:class:`Reject`, with the location and the reason). A reader never raises on a
bad *record*; it raises :class:`~atalaya.core.errors.IngestError` only when the
input as a whole cannot be read (missing file, unreadable compression).

The ingest pipeline (:mod:`atalaya.ingest.pipeline`) does the rest, the same for
every format: range validation, content-hash ids, de-duplication, markings,
partitioned writes to the lake, quarantine and the atomic commit.

Column conventions for readers:

- ``time``: ``numpy.int64`` microseconds since the Unix epoch, UTC.
- ``lon``/``lat`` and other floats: ``numpy`` float arrays; missing = NaN.
- strings (``sensor``, ``kind``, ``ident``…): Python lists or Arrow arrays; missing = ``None``.
- ``src_rec``: ``numpy.int64`` 1-based line number for text formats, record index otherwise.
- ``attrs``: optional list of JSON strings (or ``None``) for extra fields.
"""

from __future__ import annotations

import io
import lzma
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

MAX_RAW_EXCERPT = 512
"""Raw text kept in the quarantine for one rejected record (characters)."""

DEFAULT_BATCH_ROWS = 262_144
"""Rows per batch a reader should aim for."""


@dataclass(frozen=True, kw_only=True)
class ReaderLimits:
    """What one input may ask of a reader; each limit exceeded is a quarantined record or one failed file.

    The defaults suit real feeds with a wide margin; pass other values in :attr:`ReadOptions.limits`. The table in
    ``docs/formats.md`` ("Reader limits") says which reader applies which limit and what happens when it is hit.
    """

    max_line_bytes: int = 1 << 20
    """A text line (CSV, NMEA, SBS, OpenSky CSV, JSON Lines, GeoJSON sequences) longer than this is quarantined
    unread; the reader skips to the next line end without holding the line."""
    max_record_bytes: int = 64 << 20
    """One record that may span lines (a GeoJSON feature or an OpenSky state vector inside a document, a CSV
    row whose quoted field spans lines) longer than this is quarantined."""
    max_document_bytes: int = 64 << 20
    """A document that has to be parsed whole (a lone GeoJSON Feature) larger than this fails the file."""
    max_depth: int = 256
    """JSON arrays/objects or XML elements nested deeper than this are quarantined (XML: the parser's own
    limit, 256)."""
    max_decompressed_bytes: int = 64 << 30
    """A ``.gz``/``.bz2``/``.xz`` input that inflates to more than this fails the file."""
    max_compression_ratio: float = 250.0
    """Decompressed bytes per compressed byte above which an input fails as a decompression bomb, checked once
    :attr:`ratio_floor_bytes` are out (text feeds compress 5 to 20 times)."""
    ratio_floor_bytes: int = 64 << 20
    """Decompressed bytes read before :attr:`max_compression_ratio` applies."""


DEFAULT_LIMITS = ReaderLimits()
"""The limits readers apply unless told otherwise."""

MAX_LINE_BYTES = DEFAULT_LIMITS.max_line_bytes
"""Lines longer than this are rejected as absurd (the rest of the file still reads)."""


@dataclass(frozen=True, kw_only=True)
class Reject:
    """One record a reader could not turn into an observation."""

    src_rec: int
    """Line number (1-based) or record index in the source."""
    reason: str
    """Why, in words a user can act on (e.g. ``"bad NMEA checksum: got 1A, computed 2B"``)."""
    raw: str = ""
    """Excerpt of the raw record (truncated to ``MAX_RAW_EXCERPT`` characters)."""

    @staticmethod
    def excerpt(raw: bytes | str) -> str:
        """Decode (replacing bad bytes) and truncate a raw record for the quarantine."""
        if isinstance(raw, bytes):
            raw = raw[: MAX_RAW_EXCERPT * 4].decode("utf-8", errors="replace")
        return raw[:MAX_RAW_EXCERPT]


@dataclass(kw_only=True)
class ParsedBatch:
    """What a reader yields: observation columns for ``n`` rows, and the rejects."""

    columns: dict[str, Any]
    """Column name → array/list of equal length (see module docstring for types)."""
    rejects: list[Reject] = field(default_factory=list)
    """Records of this stretch of input that could not be parsed."""
    records_read: int = 0
    """Input records consumed for this batch (accepted + rejected + skipped non-data)."""
    bytes_read: int = 0
    """Bytes of input consumed for this batch (for the progress bar)."""

    def __len__(self) -> int:
        c = self.columns.get("time")
        return 0 if c is None else len(c)


@dataclass(frozen=True, kw_only=True)
class ReadOptions:
    """Options every reader accepts."""

    batch_rows: int = DEFAULT_BATCH_ROWS
    """Target rows per batch."""
    column_map: Mapping[str, str] = field(default_factory=dict)
    """For tabular formats: source column → observation column (overrides the built-in aliases)."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Constant values for columns the source lacks (e.g. ``{"sensor": "EO"}``)."""
    reference_time_us: int | None = None
    """Time the input was received (µs since the epoch), for records that carry no time or no date (SBS without
    date, NMEA without tag blocks or other in-band times); ``atalaya ingest --received-at TIME``."""
    received_at_mtime: bool = False
    """Use each file's modification time as its :attr:`reference_time_us` (when that is None);
    ``atalaya ingest --received-at mtime``."""
    limits: ReaderLimits = DEFAULT_LIMITS
    """Line, record, document, nesting and decompression limits."""


class Reader(Protocol):
    """A format reader. Implementations are plain classes registered in :mod:`atalaya.ingest.registry`."""

    name: str
    """Format name used on the command line (``--format``)."""
    extensions: tuple[str, ...]
    """File name endings this reader usually handles (lower case, with dot)."""

    def sniff(self, head: bytes, path: Path) -> float:
        """Confidence in [0, 1] that a file starting with ``head`` is in this format."""
        ...

    def read(self, path: Path, options: ReadOptions) -> Iterator[ParsedBatch]:
        """Stream the file as batches. Bad records become rejects; never raise for them."""
        ...


_COMPRESSED = (".gz", ".bz2", ".xz")
_STREAM_BUFFER = 1 << 20


class _LimitedDecompressor(io.RawIOBase):
    """A decompressing stream that turns every decoder failure into :class:`UnreadableInputError` and stops an
    input that inflates past :class:`ReaderLimits`' size or ratio (checked once per buffer refill, ~1 MiB)."""

    def __init__(self, inner: Any, raw: Any, path: Path, limits: ReaderLimits) -> None:
        super().__init__()
        self._inner = inner
        self._raw = raw
        self._path = path
        self._limits = limits
        self._out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        from atalaya.core.errors import UnreadableInputError

        try:
            n: int = self._inner.readinto(b)
        except UnreadableInputError:
            raise
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as e:
            raise UnreadableInputError(
                f"{self._path}: compressed data unreadable after {self._out} bytes: {e}",
                hint="the file is truncated or corrupt; fetch or compress it again (the rest of the run goes on)",
            ) from e
        self._out += n
        lim = self._limits
        if self._out > lim.max_decompressed_bytes:
            raise UnreadableInputError(
                f"{self._path}: inflates to more than {lim.max_decompressed_bytes} bytes",
                hint="decompress and split it, or raise ReaderLimits.max_decompressed_bytes",
            )
        if self._out > lim.ratio_floor_bytes and self._out > lim.max_compression_ratio * max(1, self._raw.tell()):
            raise UnreadableInputError(
                f"{self._path}: inflates more than {lim.max_compression_ratio:g} times (a decompression bomb?)",
                hint="check where the file came from, or raise ReaderLimits.max_compression_ratio",
            )
        return n

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._raw.close()
            super().close()


def open_source(path: Path, limits: ReaderLimits = DEFAULT_LIMITS) -> Any:
    """Open an input for binary streaming, transparently decompressing ``.gz``/``.bz2``/``.xz``.

    Raises :class:`~atalaya.core.errors.IngestError` if the file cannot be opened; reading a compressed input
    raises :class:`~atalaya.core.errors.UnreadableInputError` when its data is truncated or corrupt or it inflates
    past ``limits``. Every stream returned has ``read``, ``readinto``, ``readline`` and ``peek``.
    """
    from atalaya.core.errors import IngestError

    suffix = path.suffix.lower()
    try:
        raw = open(path, "rb")  # noqa: SIM115 (the caller closes the stream returned)
    except OSError as e:
        raise IngestError(f"cannot open {path}: {e.strerror or e}", hint="check the path and permissions") from e
    if suffix not in _COMPRESSED:
        return raw
    inner: Any
    if suffix == ".gz":
        import gzip

        inner = gzip.GzipFile(fileobj=raw, mode="rb")
    elif suffix == ".bz2":
        import bz2

        inner = bz2.BZ2File(raw, "rb")
    else:
        inner = lzma.LZMAFile(raw, "rb")  # noqa: SIM115 (closed with the stream returned)
    return io.BufferedReader(_LimitedDecompressor(inner, raw, path, limits), buffer_size=_STREAM_BUFFER)


def logical_suffix(path: Path) -> str:
    """The file's format suffix, looking through a compression suffix: ``a.nmea.gz`` → ``.nmea``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".xz"):
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def read_all(
    reader: Reader, path: Path, options: ReadOptions | None = None
) -> tuple[dict[str, list[Any]], list[Reject]]:
    """Read a whole (small) file into Python lists; for tests and tiny inputs only."""
    import numpy as np

    cols: dict[str, list[Any]] = {}
    rejects: list[Reject] = []
    n = 0
    for b in reader.read(path, options or ReadOptions()):
        m = len(b)
        for k, v in b.columns.items():
            vals = v.tolist() if isinstance(v, np.ndarray) else list(v.to_pylist() if hasattr(v, "to_pylist") else v)
            cols.setdefault(k, [None] * n).extend(vals)
        for k in cols:
            if k not in b.columns:
                cols[k].extend([None] * m)
        n += m
        rejects.extend(b.rejects)
    return cols, rejects
