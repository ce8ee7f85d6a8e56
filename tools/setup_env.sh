# Sourced by run.sh and tools/test.sh: makes a Python environment with requirements.txt ready
# and active, and installs espeak-ng (the mini recipe's speech synthesiser) and chromium (the
# realtime web page's headless test) when missing.
#
#   OSUM_VENV=DIR      where to create the virtual environment (default: <repo>/.venv)
#   OSUM_NO_VENV=1     use the active interpreter as is (you manage the packages)
#   OSUM_NO_APT=1      never call apt-get
#   OSUM_MIN_FREE_GB=N free disk space the new environment needs (default 7: torch 2.14.1 is a
#                      CUDA build, ~6.5 GB installed); checked before a new one is made
# The active interpreter is used without a venv when it already satisfies every pin.

_osum_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_osum_python="${PYTHON:-python3}"

_osum_satisfied() {  # $1 = python: exit 0 when every pin of both requirement files is installed
  "$1" - "$_osum_root/requirements.txt" "$_osum_root/requirements-nodeps.txt" <<'PY' 2>/dev/null
import sys
from importlib.metadata import PackageNotFoundError, version
for path in sys.argv[1:]:
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if not line or "==" not in line:
            continue
        name, want = (s.strip() for s in line.split("==", 1))
        try:
            have = version(name)
        except PackageNotFoundError:
            sys.exit(1)
        if have.split("+", 1)[0] != want:
            sys.exit(1)
PY
}

_osum_free_gb() {  # $1 = a path (need not exist yet): free GB on the file system that will hold it
  local dir="$1"
  while [ ! -d "$dir" ]; do dir="$(dirname "$dir")"; done
  df -Pk "$dir" | awk 'NR == 2 { printf "%d", $4 / 1048576 }'
}

_osum_stamp() {
  cat "$_osum_root/requirements.txt" "$_osum_root/requirements-nodeps.txt" | sha256sum | cut -d' ' -f1
}

osum_setup_python() {
  if [ -n "${OSUM_NO_VENV:-}" ]; then
    echo "[setup] OSUM_NO_VENV set: using $(command -v "$_osum_python")"
    return 0
  fi
  if _osum_satisfied "$_osum_python"; then
    echo "[setup] the active Python already satisfies requirements.txt"
    return 0
  fi
  local venv="${OSUM_VENV:-$_osum_root/.venv}"
  local stamp
  stamp="$(_osum_stamp)"
  if [ ! -f "$venv/.osum_stamp" ] || [ "$(cat "$venv/.osum_stamp")" != "$stamp" ]; then
    local need="${OSUM_MIN_FREE_GB:-7}" free
    free="$(_osum_free_gb "$venv")"  # empty when df cannot tell: no check then, pip reports a full disk
    if [ ! -d "$venv" ] && [ -n "$free" ] && [ "$free" -lt "$need" ]; then
      echo "[setup] only $free GB free for $venv; the environment needs about $need GB" \
           "(torch with its CUDA libraries): free some space, or set OSUM_VENV to a folder on a" \
           "larger disk (OSUM_MIN_FREE_GB lowers the check)" >&2
      return 1
    fi
    echo "[setup] creating the environment in $venv (first use: a few minutes)"
    "$_osum_python" -m venv "$venv" || return 1
    "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    local log="$venv/install.log"
    if ! { "$venv/bin/python" -m pip install -q -r "$_osum_root/requirements.txt" &&
           "$venv/bin/python" -m pip install -q --no-deps -r "$_osum_root/requirements-nodeps.txt"; } >"$log" 2>&1; then
      grep -v "is ignored: it is neither" "$log" | tail -n 30 >&2
      echo "[setup] pip failed; full log: $log" >&2
      return 1
    fi
    echo "$stamp" > "$venv/.osum_stamp"
  fi
  # shellcheck disable=SC1091
  . "$venv/bin/activate"
  echo "[setup] using $venv"
}

_osum_apt() {  # $1 = command that must exist, $2 = what needs it, rest = Debian packages
  local cmd="$1" why="$2"; shift 2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ -n "${OSUM_NO_APT:-}" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "[setup] $cmd is not installed ($why)" >&2
    return 0
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  echo "[setup] installing $* with apt-get"
  $sudo apt-get update -qq >/dev/null && \
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || echo "[setup] could not install $* (no permission?); $why" >&2
}

osum_setup_espeak() {  # the mini recipe's speech synthesiser
  _osum_apt espeak-ng "the mini recipe's data stage needs it" espeak-ng sox
}

osum_setup_chromium() {  # headless browser test of the realtime web page (tests/serve/test_web_page.py)
  _osum_apt chromium "the web page test is skipped without it" chromium
}

osum_setup() {
  osum_setup_python || { echo "[setup] failed to prepare the Python environment" >&2; return 1; }
  osum_setup_espeak
  osum_setup_chromium
  export PYTHONPATH="$_osum_root${PYTHONPATH:+:$PYTHONPATH}"
}
