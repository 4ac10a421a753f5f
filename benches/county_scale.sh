#!/usr/bin/env bash
# County-scale parcels: `landwatch scan` of the peer's 5000 × 5000 px scene (2.5 km square) with
# its own 4,970 parcels, then with a county's worth around them: a Third Land Survey layer holds
# a few hundred thousand parcels over a county of which one night's scene sees a corner. The
# county here is 30 km × 30 km of 50 m parcels (about 357,500 of them, a fifth of them
# protected farmland, most far outside the scene) plus the scene's own parcels inside its square.
# Prints wall time, peak memory and the scan's stage times of both runs, and checks that both
# find the same suspected violations (parcels the imagery does not reach can have none; their
# protected ones are reported unobserved in coverage.gpkg).
#
# Usage: benches/county_scale.sh [STEP_M] [HALF_SIDE_M]     (default 50 15000)
set -euo pipefail
cd "$(dirname "$0")/.."
step=${1:-50}
half=${2:-15000}
work=target/county-bench
scene=target/e2e-bench/scene5000-1
peer=${LANDWATCH_PEER:-../shared/peer}
mkdir -p "$work"
command -v ogr2ogr >/dev/null || { echo "needs ogr2ogr (gdal-bin; scripts/setup installs it)"; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }
if [ ! -f "$scene/after.tif" ]; then
    if [ ! -x .peer-venv/bin/python ]; then
        python3 -m venv .peer-venv
        .peer-venv/bin/pip install -q -r "$peer/requirements.txt"
    fi
    mkdir -p "$(dirname "$scene")"
    .peer-venv/bin/python "$peer/make_scene.py" "$scene" --size 5000 --parcels 5000 --seed 1
fi
cargo build --release --locked -q
bin=target/release/landwatch
county=$work/county-$step-$half.gpkg
if [ ! -f "$county" ]; then
    python3 - "$scene/parcels.gpkg" "$work/county.csv" "$step" "$half" <<'PY'
import random, sys
random.seed(7)
_, out, step, half = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
# The peer scene's square (EPSG:32651), as make_scene.py places it.
x0, y1 = 300000.0, 3450000.0
x1, y0 = x0 + 2500.0, y1 - 2500.0
cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
uses = ["farmland"] * 50 + ["forest"] * 20 + ["construction"] * 15 + ["water"] * 10 + ["grassland"] * 5
n = 0
with open(out, "w") as f:
    f.write("WKT,parcel_id,approved_use,basic_farmland\n")
    y = cy - half
    while y < cy + half:
        x = cx - half
        while x < cx + half:
            if not (x + step > x0 and x < x1 and y + step > y0 and y < y1):
                u = random.choice(uses)
                bf = 1 if u == "farmland" and random.random() < 0.4 else 0
                f.write(f'"POLYGON (({x} {y},{x + step} {y},{x + step} {y + step},{x} {y + step},{x} {y}))",'
                        f"{1000000 + n},{u},{bf}\n")
                n += 1
            x += step
        y += step
print(f"{n} county parcels around the scene's own")
PY
    ogr2ogr -f GPKG "$county.partial" "$scene/parcels.gpkg" -nln parcels 2>/dev/null
    ogr2ogr -append -addfields -f GPKG "$county.partial" "$work/county.csv" -nln parcels \
        -a_srs EPSG:32651 -oo GEOM_POSSIBLE_NAMES=WKT -oo KEEP_GEOM_COLUMNS=NO -oo AUTODETECT_TYPE=YES 2>/dev/null
    mv "$county.partial" "$county"
    rm -f "$work/county.csv"
fi

run() { # label, parcels file
    local out=$work/out-$1
    rm -rf "$out"
    cat "$scene"/*.tif > /dev/null
    /usr/bin/time -f "%e %M" -o "$work/$1.time" "$bin" scan --before "$scene/before.tif" \
        --after "$scene/after.tif" --parcels "$2" --rules fixtures/rules/peer-definition.toml \
        --out "$out" --no-packets --json > "$work/$1.json" 2> "$work/$1.stderr" || true
    read -r secs kib < <(tail -1 "$work/$1.time")
    python3 - "$1" "$secs" "$kib" "$work/$1.json" <<'PY'
import json, sys
label, secs, kib, path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = json.load(open(path))
st = {k: round(v, 2) for k, v in s["stage_seconds"].items() if v >= 0.01}
print(f"{label:>7}: {s['parcels']:>7} parcels, {secs:5.1f} s, {kib // 1024:5d} MiB, "
      f"{s['findings']} findings; stages (s): {st}")
PY
}
run scene "$scene/parcels.gpkg"
run county "$county"
python3 - "$work/out-scene/findings.geojson" "$work/out-county/findings.geojson" <<'PY'
import json, sys
def of(p):
    return sorted((f["properties"]["parcel_id"], f["properties"]["kind"], round(f["properties"]["area_m2"], 1))
                  for f in json.load(open(p))["features"])
a, b = of(sys.argv[1]), of(sys.argv[2])
print("same findings with the county's parcels:", "yes" if a == b else f"NO ({len(a)} against {len(b)})")
sys.exit(0 if a == b else 1)
PY
