"""Reading many small files of one format in one pass.

A folder of thousands of one-record files (a CoT event per file, as TAK clients and servers save them) costs
little to parse but much per file: setting up the reader, converting and validating one-row columns, hashing
one-row ids. A reader that can, reads the files' bytes (already in memory, hashed once) as one columnar batch,
each row and each reject carrying the index of the file it came from, so the pipeline validates, hashes ids,
de-duplicates and writes once for many files while each file stays its own ingest unit.

A reader takes part by having the two methods of :class:`ManyFilesReader`; the pipeline reads every other file
(and every file such a reader declines, e.g. a compressed or UTF-16 one) on its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from atalaya.ingest.base import ReadOptions, Reject

I64 = npt.NDArray[np.int64]

MANY_FILES_BYTES = 16 << 20
"""Bytes of files a reader parses as one block (then the next files)."""


@dataclass(kw_only=True)
class FilesBatch:
    """What :meth:`ManyFilesReader.read_many` yields: rows of many files, and each row's file."""

    columns: dict[str, Any]
    """Observation columns as in :class:`~atalaya.ingest.base.ParsedBatch`; ``src_rec`` is the record's place in
    its own file (its line), the same as when the file is read alone."""
    files: I64
    """Index, among the files given, of the file of each row (rows of a file together, files in the order given)."""
    rejects: list[tuple[int, Reject]]
    """Records that could not be read: ``(file index, reject)``, the reject located in its own file."""
    records: I64
    """Input records consumed from each of the files given (zero for files of other batches)."""

    def __len__(self) -> int:
        return len(self.files)


class ManyFilesReader(Protocol):
    """A reader that can read many whole files, already in memory, in one pass."""

    def batchable(self, head: bytes, path: Path) -> bool:
        """Whether the file starting with ``head`` can be read with others (else it is read alone)."""
        ...

    def read_many(self, datas: Sequence[bytes], options: ReadOptions) -> Iterator[FilesBatch]:
        """The records of the files whose bytes are ``datas``, each located in its own file; bad records are
        rejects, never exceptions. Must give every file exactly what :meth:`read` gives it alone."""
        ...


def many_files_reader(reader: object) -> ManyFilesReader | None:
    """``reader`` when it can read many files in one pass, else ``None``."""
    ok = callable(getattr(reader, "read_many", None)) and callable(getattr(reader, "batchable", None))
    return cast(ManyFilesReader, reader) if ok else None


def locate_lines(lines: I64, first_lines: I64) -> tuple[I64, I64]:
    """Lines counted across files laid end to end → ``(file index, line in that file)``.

    ``first_lines``: the joined line number of each file's first line (ascending).

    >>> f, line = locate_lines(np.array([1, 3, 4, 9]), np.array([1, 4, 6]))
    >>> f.tolist(), line.tolist()
    ([0, 0, 1, 2], [1, 3, 1, 4])
    """
    files = (np.searchsorted(first_lines, lines, side="right") - 1).astype(np.int64)
    return files, (lines - first_lines[files] + 1).astype(np.int64)


def byte_groups(datas: Sequence[bytes], limit: int = MANY_FILES_BYTES) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive files of at most ``limit`` bytes together (at least one file each).

    >>> list(byte_groups([b"ab", b"c", b"defg", b"h"], limit=3))
    [(0, 2), (2, 3), (3, 4)]
    """
    start, n = 0, len(datas)
    while start < n:
        stop, size = start + 1, len(datas[start])
        while stop < n and size + len(datas[stop]) <= limit:
            size += len(datas[stop])
            stop += 1
        yield start, stop
        start = stop
