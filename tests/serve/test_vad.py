"""Turn detection: hysteresis, min speech, hang time; Silero loads offline from its package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_helpers import tone  # noqa: E402


def detector(**kw):
    from osum_echat.serve.protocol import VadSettings
    from osum_echat.serve.vad import EnergyProb, TurnDetector

    return TurnDetector(EnergyProb(), VadSettings(**kw))


def test_start_stop_and_hang_time():
    d = detector(silence_ms=300, min_speech_ms=100)
    silence = np.zeros(16000, np.float32)
    evs = d.push(silence[:8000]) + d.push(tone(0.5)) + d.push(silence[:3200])  # 200 ms < hang time
    assert [e.kind for e in evs] == ["speech_started"]
    assert abs(d.start_sample - 8000) <= 512  # onset found at the tone's start
    evs = d.push(silence[:3200])  # 400 ms of silence in all: the turn ends
    assert [e.kind for e in evs] == ["speech_stopped"] and not d.speaking


def test_short_burst_starts_nothing():
    d = detector(min_speech_ms=200)
    evs = d.push(np.concatenate([tone(0.064), np.zeros(8000, np.float32)]))  # a 64 ms click
    assert evs == [] and not d.speaking


def test_silero_offline_speech_and_silence(tmp_path):
    pytest.importorskip("silero_vad")
    from osum_echat.serve.vad import SileroProb, WINDOW

    prob = SileroProb()  # no network: the model ships inside the package
    assert prob(np.zeros(WINDOW, np.float32)) < 0.2
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (tools/setup_env.sh installs it): no speech to detect")
    from osum_echat.audio.io import load_16k

    wav = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "hello, how are you doing today?"], check=True)
    x = load_16k(str(wav)).numpy().astype(np.float32)
    from osum_echat.serve.protocol import VadSettings
    from osum_echat.serve.vad import TurnDetector

    d = TurnDetector(prob, VadSettings())
    evs = d.push(np.concatenate([np.zeros(8000, np.float32), x, np.zeros(16000, np.float32)]))
    assert [e.kind for e in evs] == ["speech_started", "speech_stopped"]
