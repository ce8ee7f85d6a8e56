#!/usr/bin/env bash
# Release-architecture benchmarks on one GPU (random weights, bf16): training steps of the
# three stages' trainable sets (+ the 24 GB LoRA fine-tuning set), packing off/on, SDPA and
# (when flash_attn is installed) flash-attention 2 varlen; then S2S decoding and token2wav.
# Each run is a fresh process printing one JSON line (tokens/s, MFU, peak allocated memory),
# written to bench_out/gpu_release-<time>/; next to every training run the memory planner's
# figure for the same step (osum_echat.bin.plan_memory --json) is written to <name>.plan.json.
#
#   bash tools/bench/gpu_release.sh [--device cuda] [--peak_tflops 989] [--steps 5] [--out_root bench_out]
#
# --peak_tflops: the GPU's dense bf16 peak for MFU (H100/H200 SXM: 989; A100: 312; L4: 121).
# The train step batch is two 10.96 s utterances re-tasked as S2S (B 2, L 664; needs the
# upstream fake shard, see tools/bench/train_step.py). First audio = decode TTFT + the time to
# the first token2wav chunk's codes + token2wav's first-chunk latency (both printed).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

device=cuda
peak_tflops=989
steps=5
out_root=bench_out
python=python
. tools/parse_options.sh

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
out="$out_root/gpu_release-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.csv" 2>/dev/null || true

attns="sdpa"
if $python -c "import flash_attn" 2>/dev/null; then attns="sdpa flash_attention_2"; fi

# name | trainable parts and options (dotted overrides) | plan_memory options
sets=(
  "stage1|model.trainable=[encoder,adapter]|"
  "stage2|model.trainable=[llm,speech]|"
  "stage3|model.trainable=[encoder,adapter,llm,speech]|"
  "lora24|model.lora.enable=true model.trainable=[adapter,lora,speech] model.llm.activation_checkpointing=true model.loss_chunk_size=256|"
)
for attn in $attns; do
  for entry in "${sets[@]}"; do
    IFS='|' read -r name overrides _ <<< "$entry"
    for pack in off on; do
      tag="train_${name}_${attn}_pack-${pack}"
      flags=(--release --device "$device" --steps "$steps" --warmup 2 --peak_tflops "$peak_tflops")
      [ "$pack" = on ] && flags+=(--pack)
      echo "== $tag"
      # shellcheck disable=SC2086
      $python tools/bench/train_step.py "${flags[@]}" model.llm.attn_implementation=$attn $overrides \
        > "$out/$tag.json" 2> "$out/$tag.log" || echo "   failed (see $out/$tag.log)"
      # the planner for the same step: 2 x (10.96 s speech, ~460 supervised) in 2 x 664 positions
      pk="--examples 2"; [ "$pack" = on ] && pk="--examples 2 --packed"
      # shellcheck disable=SC2086
      $python -m osum_echat.bin.plan_memory --config conf/model/osum_echat_3b.yaml --json \
        --audio_s 10.96 --reply_tokens 460 --prompt_tokens 65 $pk --device cuda \
        model.llm.attn_implementation=$attn $overrides > "$out/$tag.plan.json" 2>> "$out/$tag.log" || true
    done
  done
done

echo "== decode (S2S greedy, release sizes)"
$python tools/bench/decode.py --release --device "$device" --dtype bf16 --runs 5 --threads 4 \
  > "$out/decode.json" 2> "$out/decode.log" || echo "   failed (see $out/decode.log)"
echo "== token2wav (first chunk latency, RTF)"
$python tools/bench/token2wav.py --release --device "$device" --dtype bf16 \
  > "$out/token2wav.json" 2> "$out/token2wav.log" || echo "   failed (see $out/token2wav.log)"

$python - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for f in sorted(out.glob("train_*.json")):
    if f.name.endswith(".plan.json"):
        continue
    try:
        r = json.loads(f.read_text().strip().splitlines()[-1])
        plan = json.loads((out / (f.stem + ".plan.json")).read_text())
    except (ValueError, IndexError, FileNotFoundError):
        print(f"{f.stem}: no result"); continue
    print(f"{f.stem:45s} {r['tokens_per_s']:>9} tok/s  MFU {r['mfu']}  peak {r['peak_memory_mb'] / 1024:.2f} GiB"
          f"  planned {plan['allocated_gb'] * 1e9 / 2**30:.2f} GiB (allocator)")
PY
echo "results: $out"
