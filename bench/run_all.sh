#!/usr/bin/env bash
# Run every benchmark once (each runs its peer in the same run) and keep the logs; figures go to docs/benchmarks.md.
#   bench/run_all.sh [OUTDIR]      (default bench/out/logs; sizes as recorded in docs/benchmarks.md)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench/out/logs}"
mkdir -p "$out"
py=.venv/bin/python
run() { local name=$1; shift; echo "== $name: $*" | tee "$out/$name.log"; /usr/bin/time -v "$@" >>"$out/$name.log" 2>&1; echo "rc=$?" >>"$out/$name.log"; }
run ingest      $py bench/bench_ingest.py --csv 2000000 --geoparquet 2000000 --nmea 1000000 --cot 200000
run ingest_rss  $py bench/bench_ingest.py --rss 10000000
run nmea        $py bench/bench_nmea.py --n 1000000
run cot         $py bench/bench_cot.py --events 200000 --repeat 3
run adsb        $py bench/bench_adsb.py --n 1000000 --repeat 3
run tabular     $py bench/bench_tabular.py --rows 2000000 --repeat 3
run translog    $py bench/bench_translog.py
run accounting  $py bench/bench_accounting.py --n 10000000 --tracks 2000
run tracks      $py bench/bench_tracks.py --positions 5000000
run corridors   $py bench/bench_corridors.py --n 1000000
run sites       $py bench/bench_sites.py --n 10000000
run api_load    $py bench/bench_api_load.py --clients 50 --seconds 20
run scenario    $py bench/bench_scenario.py
