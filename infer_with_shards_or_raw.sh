#!/usr/bin/env bash
# Batch decoding of a raw or shard list with N parallel jobs (one GPU each when available),
# merged in list order into OUT/text (+ think, codes, ref). Reruns skip decoded keys.
#
#   ./infer_with_shards_or_raw.sh --config C --checkpoint P --data_list L --out_dir O \
#       [--nj 4] [--model echat|osum] [--data_type auto|raw|shard] [--task s2s] [--tokenizer DIR] [--device auto] \
#       [--dtype bf16] [--batch_size 1] [--gpus "0 1 2 3"] [generate.s2s.top_k=5 ...]
# --gpus lists accelerator indices; job j runs on index gpus[j % len] (default: index 0).
set -euo pipefail

nj=1
gpus=""
out_dir=""
python=${PYTHON:-python}
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nj) nj=$2; shift 2 ;;
    --gpus) gpus=$2; shift 2 ;;
    --out_dir) out_dir=$2; args+=("$1" "$2"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ -n "$out_dir" ] || { echo "usage: $0 --out_dir O --data_list L --checkpoint P [...]" >&2; exit 1; }
mkdir -p "$out_dir/log"
read -r -a gpu_list <<< "$gpus"

pids=()
for ((j = 0; j < nj; j++)); do
  # accelerator index of this job (device "auto"/bare type picks LOCAL_RANK, see device.py)
  rank=0
  if [ ${#gpu_list[@]} -gt 0 ]; then
    rank=${gpu_list[$((j % ${#gpu_list[@]}))]}
  fi
  LOCAL_RANK=$rank "$python" -m osum_echat.bin.decode "${args[@]}" --nj "$nj" --job_id "$j" \
    > "$out_dir/log/decode.$j.log" 2>&1 &
  pids+=($!)
done
status=0
for j in "${!pids[@]}"; do
  if ! wait "${pids[$j]}"; then
    echo "job $j failed, see $out_dir/log/decode.$j.log" >&2
    status=1
  fi
done
[ $status -eq 0 ] || exit $status
"$python" -m osum_echat.bin.decode --merge --nj "$nj" --out_dir "$out_dir"
echo "done: $out_dir/text ($(wc -l < "$out_dir/text") lines)"
