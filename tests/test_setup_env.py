"""tools/setup_env.sh refuses to start a new environment on a disk without room for it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("df") is None,
                                reason="needs bash and df")


def _bash(script: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "OSUM_NO_APT": "1", **env}
    full.pop("OSUM_NO_VENV", None)
    return subprocess.run(["bash", "-c", f". {REPO}/tools/setup_env.sh; {script}"], env=full,
                          capture_output=True, text=True, timeout=60)


def test_free_space_of_a_path_not_made_yet(tmp_path):
    out = _bash(f"_osum_free_gb {tmp_path}/a/b/c")
    assert out.returncode == 0, out.stderr
    st = os.statvfs(tmp_path)
    assert abs(int(out.stdout) - st.f_bavail * st.f_frsize // 2**30) <= 1  # other writers may move it


def test_new_environment_refused_without_room(tmp_path):
    venv = tmp_path / "venv"
    # an interpreter that satisfies nothing, so the script goes on to make the environment
    out = _bash("osum_setup_python", OSUM_VENV=str(venv), OSUM_MIN_FREE_GB="100000000",
                PYTHON="/bin/false")
    assert out.returncode == 1
    assert f"GB free for {venv}" in out.stderr and "needs about 100000000 GB" in out.stderr
    assert not venv.exists()  # refused before python -m venv ran


def test_existing_environment_not_refused(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()  # a folder that is there already (its packages reused): no check
    out = _bash("osum_setup_python", OSUM_VENV=str(venv), OSUM_MIN_FREE_GB="100000000",
                PYTHON="/bin/false")
    assert "needs about" not in out.stderr
