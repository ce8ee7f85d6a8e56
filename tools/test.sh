#!/usr/bin/env bash
# Run the test suite (CPU): unit tests, then the quick end-to-end mini recipe.
# Sets up the environment on first use (see tools/setup_env.sh).
#   bash tools/test.sh                 # everything
#   bash tools/test.sh tests/model     # only these pytest paths (no end-to-end run)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck disable=SC1091
. tools/setup_env.sh
osum_setup
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

log="$(mktemp)"
python -m pytest -q "$@" 2>&1 | tee "$log"
count() { { grep -Eo "[0-9]+ $1" "$log" || true; } | tail -n 1 | cut -d' ' -f1; }
passed=$(count passed); skipped=$(count skipped)
rm -f "$log"
if [ $# -eq 0 ] && [ -f recipes/mini/run.sh ]; then
  echo "[test] end-to-end: the mini recipe in quick mode"
  e2e="$(mktemp -d "${TMPDIR:-/tmp}/osum_e2e.XXXXXX")"   # fresh: no stale .done markers
  bash recipes/mini/run.sh --quick true --data_root "$e2e/data" --exp_root "$e2e/exp"
  rm -rf "$e2e"
  echo "summary: $(( ${passed:-0} + 1 )) passed, 0 failed, ${skipped:-0} skipped (unit tests + the end-to-end recipe)"
fi
