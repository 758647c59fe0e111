"""Coverage-guided fuzzing of one reader with atheris (libFuzzer).

    python tests/fuzz/fuzz_readers.py TARGET [libFuzzer options] [CORPUS_DIR ...]

e.g. ``python tests/fuzz/fuzz_readers.py csv -max_total_time=60 /tmp/csv-corpus tests/fuzz/corpus/csv``
(new inputs go to the first folder). A crash prints its traceback and writes the input to
``-artifact_prefix``; copy it into ``tests/fuzz/crashers/TARGET/`` once fixed, where the replay test keeps it.
Targets: see ``reader_harness.TARGETS``.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["atalaya"]):
    import reader_harness

    from atalaya.ingest import adsb, adsb_json, base, cot, geojson, jsonstream, nmea, tabular, tracks, validate  # noqa: F401


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in reader_harness.TARGETS:
        sys.exit(f"usage: fuzz_readers.py TARGET [libFuzzer options]; targets: {', '.join(reader_harness.TARGETS)}")
    target = sys.argv.pop(1)

    def one_input(data: bytes) -> None:
        reader_harness.run_one(target, data)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
