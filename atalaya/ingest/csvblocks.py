"""Reading a CSV whose header was already read as blocks of string columns, each row with its source line.

The readers of fixed-layout CSV exports (FIRMS, Flightradar24) parse every
column as a string and convert what they need themselves; what they share is
the streaming: Arrow's CSV reader in blocks, rows with the wrong number of
fields quarantined by line, and the line number of every row kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pcsv

from atalaya.ingest.base import Reject


def string_blocks(
    fh: IO[bytes], names: Sequence[str], *, block_bytes: int, null_values: Sequence[str] = ("",)
) -> Iterator[tuple[pa.Table | None, npt.NDArray[np.int64], list[Reject]]]:
    """``(table, lines, rejects)`` per block of ``fh`` (positioned after the header, which is line 1).

    ``table`` holds the block's rows as strings, ``lines`` the source line of each, ``rejects`` the rows the
    parser skipped in it (wrong field count) or an unreadable rest of the file. A last item with ``table`` None
    carries rejects that came after the last block.
    """
    rejects: list[Reject] = []

    def bad_row(row: Any) -> str:
        rejects.append(Reject(src_rec=int(row.number) + 1 if row.number else 0,
                              reason=f"expected {row.expected_columns} fields, got {row.actual_columns}",
                              raw=Reject.excerpt(row.text or "")))  # fmt: skip
        return "skip"

    reader = pcsv.open_csv(
        fh,
        read_options=pcsv.ReadOptions(column_names=list(names), block_size=block_bytes, use_threads=False),
        parse_options=pcsv.ParseOptions(invalid_row_handler=bad_row),
        convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                            strings_can_be_null=True, null_values=list(null_values)),
    )  # fmt: skip
    line = 2
    while True:
        try:
            rb = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as e:
            rejects.append(Reject(src_rec=line, reason=f"unreadable CSV: {e}"))
            break
        # rows of this block the parser skipped (wrong field count) hold their line numbers
        bad = sorted(r.src_rec for r in rejects)
        lines = np.setdiff1d(np.arange(line, line + rb.num_rows + len(bad), dtype=np.int64), bad)[: rb.num_rows]
        out, rejects = rejects, []
        line = int(max(lines[-1] if lines.size else line - 1, bad[-1] if bad else line - 1)) + 1
        yield pa.Table.from_batches([rb]), lines, out
    if rejects:
        yield None, np.empty(0, dtype=np.int64), rejects
