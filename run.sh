#!/usr/bin/env bash
# The main job: set up the environment on first use, then run a recipe stage by stage.
#   bash run.sh                               # the CPU mini recipe (recipes/mini), all stages
#   bash run.sh --quick true                  # its 5-minute version
#   bash run.sh --stage 2 --stop_stage 4      # options pass through to the recipe
#   bash run.sh --recipe echat --device cuda  # the real-data recipe (recipes/echat) on a cluster
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"
cd "$root"
recipe=mini
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --recipe) recipe="$2"; shift 2 ;;
    --recipe=*) recipe="${1#*=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ ! -f "recipes/$recipe/run.sh" ]; then
  echo "run.sh: no recipe '$recipe' (have: $(ls recipes 2>/dev/null | tr '\n' ' '))" >&2
  exit 2
fi
# shellcheck disable=SC1091
. tools/setup_env.sh
osum_setup
exec bash "recipes/$recipe/run.sh" ${args[@]+"${args[@]}"}
