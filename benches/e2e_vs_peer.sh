#!/usr/bin/env bash
# End-to-end bench: `landwatch scan` against the peer pipeline (../shared/peer) on the same peer
# scene, one after the other on this machine, in one run. Prints wall time, peak RSS, CPU time
# (user + system) and parcel-level accuracy of both, and their ratios; writes
# target/e2e-bench/result.json.
#
# Usage: [RUNS=N] benches/e2e_vs_peer.sh [SIZE] [PARCELS] [SEED]     (default 5000 5000 1)
# RUNS (default 1): peer and landwatch are run as N back-to-back pairs; each pair gives a
# speed-up, and the pair with the median speed-up is the one reported (on a shared machine one
# pair's ratio moves with the machine's load by ±10 %).
# PIXEL_SIZE (default: the imagery's 0.5 m): the grid pixel landwatch analyses at, through a
# config with `[grid] pixel_size` (1.0 averages the scene's 2 × 2 pixel blocks as it reads them).
# Also measured: the read floor, reading the two dates alone into memory (GDAL through rasterio,
# both at once on two threads, median of three), the part of any pipeline's time on this machine
# that no detector can remove; printed beside the time a given speed-up over the peer leaves.
# SCALING=1 also measures how far two cores take landwatch here: one scan on one thread, then two
# one-thread scans at once (what the machine itself gives two independent jobs) against the
# scan on both cores.
# Before each measured command the scene's files are read once (not timed), so that neither side
# pays for pages the machine evicted from its page cache in the meantime (this VM pages out file
# pages untouched for a minute): without it the first pair's peer read part of its inputs from disk.
# Needs the peer's Python packages: they are installed into .peer-venv on first use (PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-5000}
parcels=${2:-5000}
seed=${3:-1}
runs=${RUNS:-1}
pixel=${PIXEL_SIZE:-}
scaling=${SCALING:-0}
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive whole number, got '$runs'"; exit 1; }
peer=${LANDWATCH_PEER:-../shared/peer}
work=target/e2e-bench
scene=$work/scene$size-$seed
mkdir -p "$work"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }
if [ ! -x .peer-venv/bin/python ]; then
    python3 -m venv .peer-venv
    .peer-venv/bin/pip install -q -r "$peer/requirements.txt"
fi
P=.peer-venv/bin/python
[ -f "$scene/after.tif" ] || $P "$peer/make_scene.py" "$scene" --size "$size" --parcels "$parcels" --seed "$seed"
cargo build --release --locked -q
bin=target/release/landwatch
config=()
if [ -n "$pixel" ]; then
    printf '[grid]\npixel_size = %s\n' "$pixel" > "$work/pixel.toml"
    config=(--config "$work/pixel.toml")
fi

measure() { # label, command... -> wall seconds, peak KiB, CPU seconds (user + system)
    local label=$1; shift
    cat "$scene"/*.tif "$scene"/*.gpkg > /dev/null
    # Exit 2 ("done, with skipped inputs": the peer scene's rasters carry no acquisition date) is fine.
    /usr/bin/time -f "%e %M %U %S" -o "$work/$label.time" "$@" > "$work/$label.stdout" 2> "$work/$label.stderr" || true
    local line
    line=$(grep -E '^[0-9.]+ [0-9]+ [0-9.]+ [0-9.]+$' "$work/$label.time") || {
        echo "$label: /usr/bin/time recorded no figures in $work/$label.time (the command's errors: $work/$label.stderr)" >&2
        exit 1
    }
    read -r secs kib user sys <<< "$line"
    echo "$secs $kib $(python3 -c "print(f'{$user + $sys:.2f}')")"
}

echo "scene $scene ($size x $size px, $parcels parcels); $(nproc) cores; $runs pair(s) of runs; landwatch grid pixel ${pixel:-as the imagery}"
pairs=()
for run in $(seq 1 "$runs"); do
    read -r p_s p_kib p_cpu < <(measure peer $P "$peer/peer_pipeline.py" "$scene/before.tif" "$scene/after.tif" "$scene/parcels.gpkg" "$work/peer.geojson")
    rm -rf "$work/lw"
    read -r l_s l_kib l_cpu < <(measure landwatch "$bin" scan "${config[@]}" --before "$scene/before.tif" --after "$scene/after.tif" --parcels "$scene/parcels.gpkg" --rules fixtures/rules/peer-definition.toml --out "$work/lw" --no-packets --json)
    ratio=$(python3 -c "print(f'{$p_s / max($l_s, 1e-9):.2f}')")
    [ "$runs" -gt 1 ] && echo "  pair $run: peer $p_s s, landwatch $l_s s, ${ratio}x"
    pairs+=("$ratio $p_s $p_kib $l_s $l_kib $p_cpu $l_cpu")
done
# The pair with the median speed-up (the lower middle one for an even count).
read -r _ peer_s peer_kib lw_s lw_kib peer_cpu lw_cpu < <(printf '%s\n' "${pairs[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
all_ratios=$(printf '%s\n' "${pairs[@]}" | cut -d' ' -f1 | sort -n | tr '\n' ' ')
$P "$peer/check_truth.py" "$work/peer.geojson" "$scene" > "$work/peer.accuracy" 2>&1 || true
rm -rf "$work/lw-packets"
"$bin" eval --truth "$scene/truth.gpkg" --findings "$work/lw/findings.gpkg" > "$work/landwatch.accuracy"
read -r lwp_s lwp_kib lwp_cpu < <(measure landwatch-packets "$bin" scan "${config[@]}" --before "$scene/before.tif" --after "$scene/after.tif" --parcels "$scene/parcels.gpkg" --rules fixtures/rules/peer-definition.toml --out "$work/lw-packets" --json)
findings=$(python3 -c "import json,sys; print(json.load(open('$work/landwatch-packets.stdout'))['findings'])")
scale_json=null
if [ "$scaling" = 1 ]; then
    lw1=("$bin" scan "${config[@]}" --before "$scene/before.tif" --after "$scene/after.tif" --parcels "$scene/parcels.gpkg" --rules fixtures/rules/peer-definition.toml --no-packets --json --threads 1)
    rm -rf "$work/lw1"
    read -r one_s _ < <(measure landwatch-1thread "${lw1[@]}" --out "$work/lw1")
    rm -rf "$work/lw1a" "$work/lw1b"
    measure landwatch-1thread-a "${lw1[@]}" --out "$work/lw1a" > "$work/pair-a.out" &
    measure landwatch-1thread-b "${lw1[@]}" --out "$work/lw1b" > "$work/pair-b.out" &
    wait
    read -r a_s _ < "$work/pair-a.out"
    read -r b_s _ < "$work/pair-b.out"
    scale_json=$(python3 -c "
import json
one, a, b, two = $one_s, $a_s, $b_s, $lw_s
print(json.dumps({'one_thread_s': one, 'two_one_thread_scans_at_once_s': [a, b],
                  'landwatch_two_core_speedup': round(one / two, 2),
                  'machine_two_job_throughput': round(2 * one / max(a, b), 2)}))")
fi
floors=()
for _ in 1 2 3; do
    floors+=("$($P - "$scene/before.tif" "$scene/after.tif" <<'PY'
import sys, time
from concurrent.futures import ThreadPoolExecutor
import rasterio
def read(path):
    with rasterio.open(path) as d:
        return d.read().shape
t = time.perf_counter()
with ThreadPoolExecutor(2) as pool:
    list(pool.map(read, sys.argv[1:3]))
print(f"{time.perf_counter() - t:.2f}")
PY
)")
done
floor=$(printf '%s\n' "${floors[@]}" | sort -n | sed -n 2p)
peer_read=$(python3 -c "
import json
for line in open('$work/peer.stderr'):
    if line.startswith('{'):
        print(json.loads(line)['stages']['read'])
" | tail -1)

echo
printf "%-34s %8s %10s %8s\n" "" "wall s" "peak MiB" "CPU s"
printf "%-34s %8.1f %10.0f %8.1f\n" "peer (rasterio + exactextract)" "$peer_s" "$((peer_kib / 1024))" "$peer_cpu"
printf "%-34s %8.1f %10.0f %8.1f\n" "landwatch scan, no packets" "$lw_s" "$((lw_kib / 1024))" "$lw_cpu"
printf "%-34s %8.1f %10.0f %8.1f\n" "landwatch scan + $findings packets" "$lwp_s" "$((lwp_kib / 1024))" "$lwp_cpu"
speed=$(python3 -c "print(f'{$peer_s / max($lw_s, 1e-9):.2f}')")
mem=$(python3 -c "print(f'{$peer_kib / max($lw_kib, 1):.2f}')")
cpu_ratio=$(python3 -c "print(f'{$peer_cpu / max($lw_cpu, 1e-9):.2f}')")
echo "speed-up (peer time / landwatch time, no packets): ${speed}x; memory ratio (peer / landwatch): ${mem}x"
echo "CPU time (user + system; the peer runs on one core, landwatch on all): peer / landwatch ${cpu_ratio}x"
[ "$runs" -gt 1 ] && echo "speed-ups of the $runs pairs, sorted: $all_ratios(the median pair is shown above)"
echo "read floor (the two dates read into memory alone, two threads): ${floor} s; the peer's own read stage (last pair): ${peer_read:-?} s"
python3 -c "print(f'5x the peer leaves {$peer_s / 5:.2f} s in all, {$peer_s / 5 - $floor:.2f} s beyond the read floor (landwatch now: {$lw_s - $floor:.2f} s beyond it)')"
if [ "$scaling" = 1 ]; then
    python3 -c "
import json
s = json.loads('$scale_json')
print(f\"two cores: landwatch {s['landwatch_two_core_speedup']}x its one-thread time ({s['one_thread_s']} s); \"
      f\"two one-thread scans at once finish in {max(s['two_one_thread_scans_at_once_s'])} s, \"
      f\"{s['machine_two_job_throughput']}x the work of one in that time (the machine's own ceiling for two jobs)\")"
fi
echo
echo "peer accuracy:";      cat "$work/peer.accuracy"
echo "landwatch accuracy:"; head -2 "$work/landwatch.accuracy"
python3 - "$work" "$peer_s" "$peer_kib" "$lw_s" "$lw_kib" "$lwp_s" "$lwp_kib" "$findings" "$size" "$all_ratios" "${pixel:-native}" "$floor" "$scale_json" "$peer_cpu" "$lw_cpu" <<'PY'
import json, sys
w, ps, pk, ls, lk, lps, lpk, n, size, ratios, pixel, floor, scaling, pc, lc = sys.argv[1:]
json.dump({"size": int(size), "landwatch_pixel_size": pixel, "peer_s": float(ps), "peer_rss_kib": int(pk), "landwatch_s": float(ls),
           "landwatch_rss_kib": int(lk), "peer_cpu_s": float(pc), "landwatch_cpu_s": float(lc),
           "landwatch_with_packets_s": float(lps),
           "landwatch_with_packets_rss_kib": int(lpk), "packets": int(n),
           "speedup": float(ps) / max(float(ls), 1e-9),
           "speedups_of_all_pairs": [float(r) for r in ratios.split()],
           "read_floor_s": float(floor), "scaling": json.loads(scaling)},
          open(f"{w}/result.json", "w"), indent=2)
PY
