#!/usr/bin/env bash
# OSUM-EChat on real data: data lists -> speech tokens -> stage 1 (understanding) -> stage 2
# (TTS, then S2S + T2T) -> stage 3 (empathy, both think styles) -> decode -> score.
# Every training stage starts from the previous stage's averaged model and can be re-run:
# it resumes from its model_dir/latest and skips when its avg.pt exists.
#
#   bash recipes/echat/run.sh --stage 0 --stop_stage 9 --device cuda --nproc_per_node 8
#   multi-node: add --num_nodes 3 --node_rank {0,1,2} --master_addr HOST --master_port 29401
#   Ascend:     --device npu   (applies osum_echat.device.npu_environment(): HCCL timeout, ...)
# Run from the repository root. Paths below are variables: point them at your corpus.
set -euo pipefail

# ---------------------------------------------------------------- options (--name value)
stage=0
stop_stage=9
device=cuda                 # cuda | npu | cpu
train_engine=deepspeed      # deepspeed | torch_ddp
ds_config=conf/deepspeed/ds_stage2.json
num_nodes=1
node_rank=0
master_addr=127.0.0.1
master_port=29401
nproc_per_node=8
python=python
exp=exp/echat
data=data/echat
train_lists_yaml=recipes/echat/conf/data_train.yaml  # name: {path, weight, family}, docs/data.md §7
cv_lists_yaml=recipes/echat/conf/data_cv.yaml        # no family -> one CV list ($data/cv.all.list)
think_lists_yaml=recipes/echat/conf/data_think.yaml  # stage 3 data (<THINK> tasks)
whisper_init=pretrained/whisper-medium.pt       # openai-whisper medium checkpoint for stage 1
cosyvoice_dir=pretrained/CosyVoice-300M-25Hz    # speech_tokenizer_v1.onnx for stage 1 of the data
raw_for_tokens=""           # raw jsonl lists whose reply audio still needs speech codes
test_sets="asr=<TRANSCRIBE>;s2s=<S2TCHAT> <TEXT2TOKEN> <THINK>"  # name=task;... lists: $data/test/<name>.list
average_num=5
nj=8
. tools/parse_options.sh

run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

if [ "$device" = npu ]; then
  eval "$($python -c 'from osum_echat.device import npu_environment as e; print("\n".join(f"export {k}={v}" for k, v in e().items()))')"
fi
export PYTHONPATH="${PYTHONPATH:-}:$(pwd)"

# One training run under torchrun (any number of nodes); resumes from $dir/latest if present.
train() {
  local conf=$1 dir=$2 init=$3; shift 3
  local engine_args=(--train_engine "$train_engine")
  [ "$train_engine" = deepspeed ] && engine_args+=(--deepspeed_config "$ds_config")
  local init_args=()
  [ -n "$init" ] && init_args=(--checkpoint "$init")
  torchrun --nnodes="$num_nodes" --node_rank="$node_rank" --nproc_per_node="$nproc_per_node" \
    --master_addr="$master_addr" --master_port="$master_port" \
    -m osum_echat.bin.train --config "$conf" --model_dir "$dir" --device "$device" \
    "${engine_args[@]}" "${init_args[@]}" --resume "$@"
}

# Weights of the last $average_num checkpoints (DeepSpeed runs also write flat step_N.pt).
average() {
  local dir=$1
  [ "$node_rank" -eq 0 ] || return 0
  $python -m osum_echat.bin.average_model --dst "$dir/avg.pt" --src_dir "$dir" --num "$average_num"
}

# ------------------------------------------------------------------------- 0: data lists
if run_stage 0; then
  mkdir -p "$data"
  $python common_utils/expand_data_lists.py "$train_lists_yaml" "$data/train"
  $python common_utils/expand_data_lists.py "$cv_lists_yaml" "$data/cv"
  $python common_utils/expand_data_lists.py "$think_lists_yaml" "$data/think"
fi

# ------------------------------------------------------------------ 1: speech tokens (25 Hz)
if run_stage 1; then
  for raw in $raw_for_tokens; do
    out="${raw%.jsonl}.tok.jsonl"
    [ -f "$out" ] && continue
    $python tools/extract_speech_tokens.py --raw_list "$raw" --out "$out.tmp" \
      --onnx "$cosyvoice_dir/speech_tokenizer_v1.onnx" --nj "$nj" && mv "$out.tmp" "$out"
  done
fi

# ------------------------------------------- 2: stage 1, understanding (encoder + adapter)
if run_stage 2 && [ ! -f "$exp/stage1/avg.pt" ]; then
  train conf/stage1_understanding.yaml "$exp/stage1" "" \
    --whisper_init "$whisper_init" --train_data_s2t "$data/train.s2t.list" --cv_data "$data/cv.all.list"
  average "$exp/stage1"
fi

# ----------------------------------------------------- 3: stage 2a, generation: TTS first
if run_stage 3 && [ ! -f "$exp/stage2a/avg.pt" ]; then
  train conf/stage2_generation.yaml "$exp/stage2a" "$exp/stage1/avg.pt" \
    --train_data_t2s "$data/train.t2s.list" --cv_data "$data/cv.all.list"
  average "$exp/stage2a"
fi

# -------------------------------------------- 4: stage 2b, generation: S2S dialogue + T2T
if run_stage 4 && [ ! -f "$exp/stage2b/avg.pt" ]; then
  train conf/stage2_generation.yaml "$exp/stage2b" "$exp/stage2a/avg.pt" \
    --train_data_s2s "$data/train.s2s.list" --train_data_t2t "$data/train.t2t.list" \
    --cv_data "$data/cv.all.list"
  average "$exp/stage2b"
fi

# ---------------------------------------------- 5: stage 3, empathy (language and tag think)
if run_stage 5; then
  for style in language tag; do
    dir="$exp/stage3_$style"
    [ -f "$dir/avg.pt" ] && continue
    train conf/stage3_empathy.yaml "$dir" "$exp/stage2b/avg.pt" \
      --train_data_s2s "$data/think.s2s.list" --train_data_s2t "$data/think.s2t.list" \
      --cv_data "$data/cv.all.list" "text.think_style=$style"
    average "$dir"
  done
fi

# ---------------------------------------------------------------------------- 6: decode
if run_stage 6 && [ "$node_rank" -eq 0 ]; then
  IFS=';' read -r -a sets <<< "$test_sets"
  for style in language tag; do
    dir="$exp/stage3_$style"
    for pair in "${sets[@]}"; do
      name=${pair%%=*}; task=${pair#*=}
      [ -f "$dir/decode_$name/text" ] && continue
      $python -m osum_echat.bin.decode --config "$dir/train.yaml" --checkpoint "$dir/avg.pt" \
        --data_list "$data/test/$name.list" --out_dir "$dir/decode_$name" --task "$task"
    done
  done
fi

# ----------------------------------------------------------------------------- 7: score
if run_stage 7 && [ "$node_rank" -eq 0 ]; then
  IFS=';' read -r -a sets <<< "$test_sets"
  for style in language tag; do
    for pair in "${sets[@]}"; do
      out="$exp/stage3_$style/decode_${pair%%=*}"
      $python -m osum_echat.bin.score --ref "$out/ref" --hyp "$out/text" --metric cer | tee "$out/cer.txt"
    done
  done
fi
