#!/usr/bin/env bash
# Times `h2lab report` on a 100-cell, 3-repetition results directory. The directory is
# made from one real short run (its result.json and latency.hlog copied into 100 cells x 3
# repetitions, with throughput varied so the charts differ), then reported 5 times.
# Usage: scripts/bench-report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p h2lab -p sut
h2lab=target/release/h2lab
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/seed.toml" <<'TOML'
[scenario]
name = "seed"
duration = "5s"
warmup = "500ms"
[axes]
topology = ["direct-edge"]
load = [{ connections = 8, rate = 2000 }]
TOML
"$h2lab" run -q --out "$work/seed" "$work/seed.toml" >/dev/null
python3 - "$work/seed" "$work/big" <<'PY'
import json, os, shutil, sys
seed, big = sys.argv[1], sys.argv[2]
m = json.load(open(os.path.join(seed, "manifest.json")))
src = os.path.join(seed, m["cells"][0]["dir"])
cells, records = [], []
for i in range(100):
    cid = f"cell-{i:03}"
    topo = ["direct-edge", "reverse-proxy:sut", "in-process", "out-of-process"][i % 4]
    cells.append({"id": cid, "axes": {"topology": topo, "load": f"l{i}"}, "load": {"rate": 100.0 * (i + 1), "sweep": f"sweep-{topo}"}})
    for rep in (1, 2, 3):
        rel = f"cells/{cid}/rep-{rep}"
        os.makedirs(os.path.join(big, rel))
        r = json.load(open(os.path.join(src, "result.json")))
        r["summary"]["rps"] *= 1 + (i % 7) / 10 + rep / 100
        json.dump(r, open(os.path.join(big, rel, "result.json"), "w"))
        shutil.copy(os.path.join(src, "latency.hlog"), os.path.join(big, rel, "latency.hlog"))
        records.append({"cell": cid, "rep": rep, "status": "ok", "dir": rel})
m["plan"]["cells"], m["cells"] = cells, records
json.dump(m, open(os.path.join(big, "manifest.json"), "w"))
PY
for i in 1 2 3 4 5; do
    /usr/bin/time -f "report of 100 cells x 3 repetitions: %e s wall, %P CPU, %M KB max RSS" \
        "$h2lab" report "$work/big" --out "$work/report" >/dev/null
done
