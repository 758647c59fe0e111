"""The lake rows of validated observations: content-hash ids, constant columns, day partitions."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from atalaya.core.ids import float_bits, hash_columns, hash_string_codes, hash_strings, ids_to_arrow
from atalaya.ingest.validate import US_PER_DAY, np_values, valid_mask
from atalaya.model.observation import SCHEMA


def observation_table(
    arrays: Mapping[str, pa.Array], src_hash: np.uint64, consts: Mapping[str, pa.Array]
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The lake rows of validated, kept ``arrays``: content-hash ids, and the columns ``consts`` gives (marking,
    format, source file, unit: dictionary arrays as long as the rows). Returns the table, each row's time (µs)
    and the first lane of its id (the de-duplication key)."""
    t_us = np_values(arrays["time"], np.int64)  # no nulls: rows without a time were rejected
    alt = arrays["alt_m"]
    alt_values = np_values(alt, np.float32).astype(np.float64)
    alt_valid = valid_mask(alt)
    if alt_valid is not None:
        alt_values[~alt_valid] = np.nan
    lanes = hash_columns(
        [
            src_hash,  # the same in every row
            hash_string_codes(arrays["sensor"]),  # dictionary-encoded: hashed and mixed per distinct value
            t_us.view(np.uint64),
            float_bits(np_values(arrays["lon"], np.float64), 7),
            float_bits(np_values(arrays["lat"], np.float64), 7),
            float_bits(alt_values, 1),
            hash_strings(arrays["ident"]),
            hash_string_codes(arrays["kind"]),
        ]
    )
    obs_id = ids_to_arrow(*lanes)
    cols: list[pa.Array] = []
    for f in SCHEMA:
        if f.name == "obs_id":
            cols.append(obs_id)
        elif f.name in consts:
            cols.append(consts[f.name])
        else:
            cols.append(arrays[f.name])
    return pa.Table.from_arrays(cols, schema=SCHEMA), t_us, lanes[0]


def day_partitions(t_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's UTC day number since the epoch, and the distinct days (ascending)."""
    day_index = t_us // US_PER_DAY
    lo, hi = int(day_index.min()), int(day_index.max())
    if lo == hi:
        days = np.array([lo])
    elif hi - lo < 1 << 16:  # a span of days: count them instead of sorting the rows
        days = np.flatnonzero(np.bincount(day_index - lo)) + lo
    else:
        days = np.unique(day_index)
    return day_index, days
