#!/usr/bin/env bash
# Run every benchmark in tools/bench/ (*.py) with CPU-friendly defaults and write one JSON file
# per run into bench_out/<timestamp>/ (<name>.json; stdout/stderr in <name>.log), plus
# meta.json (git revision, host, cores, load average). See docs/benchmarks.md.
#   bash tools/bench/run_all.sh [--only loader,decode] [--out_root bench_out] [--python python]
# Arguments per benchmark can be replaced: --args_decode "--threads 2 --runs 8".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

python=python
out_root=bench_out
only=""                               # comma-separated benchmark names (default: all)
args_loader="--passes 2 --workers 0,1"
args_decode="--runs 5 --threads 1"
args_token2wav="--repeats 2"
args_train_step=""
args_serve_load="--clients 4 --turns 5 --barge_every 4"
. tools/parse_options.sh

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
out="$out_root/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
$python - "$out/meta.json" <<'PY'
import json, os, platform, subprocess, sys, time
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
json.dump({"git": rev, "host": platform.node(), "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
           "python": platform.python_version(), "time": time.strftime("%Y-%m-%d %H:%M:%S")},
          open(sys.argv[1], "w"), indent=1)
PY

status=0
for f in tools/bench/*.py; do
  name=$(basename "$f" .py)
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
  var="args_$name"
  read -r -a extra <<< "${!var:-}"
  echo "[bench] $name ${extra[*]:-}"
  start=$(date +%s)
  if $python "$f" "${extra[@]}" > "$out/$name.log" 2>&1; then rc=0; else rc=$?; status=1; fi
  # the benchmark prints its result as a JSON object: keep the last one, add the run facts
  $python - "$out/$name.log" "$out/$name.json" "$name" "$rc" "$(( $(date +%s) - start ))" "${extra[*]:-}" <<'PY'
import json, sys
log, dst, name, rc, secs, args = sys.argv[1:]
text, result, dec = open(log, encoding="utf-8", errors="replace").read(), None, json.JSONDecoder()
i = text.find("{")
while i != -1:
    try:
        result, end = dec.raw_decode(text, i)  # a whole object: continue after it
    except ValueError:
        end = i + 1
    i = text.find("{", end)
json.dump({"bench": name, "args": args, "returncode": int(rc), "wall_s": int(secs), "result": result},
          open(dst, "w"), indent=1)
PY
  echo "[bench] $name: rc=$rc -> $out/$name.json"
done
echo "[bench] results in $out"
exit $status
