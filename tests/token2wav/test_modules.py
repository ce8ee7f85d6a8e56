"""Flow / HiFT modules: lengths, key layout, weight-norm loading, schedule and CFG."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from osum_echat.token2wav.config import release_config, tiny_config
from osum_echat.token2wav.flow import ConditionalCFM, FlowModel, frames_for, time_span
from osum_echat.token2wav.hift import HiFTGenerator
from osum_echat.token2wav.weights import expected_keys, load_hift, strict_load, to_old_weight_norm

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "token2wav_release_keys.json"


@pytest.mark.parametrize("n", [1, 7, 40, 41, 100])
def test_synthesize_length(tiny_t2w, n):
    codes = np.random.RandomState(n).randint(0, 4096, n)
    wav, sr = tiny_t2w.synthesize(codes)
    assert sr == 22050 and wav.dtype == np.float32
    assert len(wav) == frames_for(n, 25) * 256 == n * 22050 // 6400 * 256
    assert abs(len(wav) - n * 882) <= 256 and np.isfinite(wav).all() and np.abs(wav).max() <= 0.99


def test_empty_and_bad_codes(tiny_t2w):
    wav, _ = tiny_t2w.synthesize([])
    assert wav.shape == (0,)
    with pytest.raises(ValueError, match="outside"):
        tiny_t2w.synthesize([1, 4096])


def test_seed_determinism(tiny_t2w):
    codes = list(range(30))
    a, _ = tiny_t2w.synthesize(codes, seed=1)
    b, _ = tiny_t2w.synthesize(codes, seed=1)
    c, _ = tiny_t2w.synthesize(codes, seed=2)
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_release_key_layout_matches_fixture():
    got = expected_keys(release_config())
    want = json.loads(FIXTURE.read_text())
    assert got == want
    flow, hift = want["flow"], want["hift"]
    assert flow["input_embedding.weight"] == [4096, 512]
    assert flow["spk_embed_affine_layer.weight"] == [80, 192]
    assert flow["encoder.encoders.5.self_attn.pos_bias_u"] == [8, 64]
    assert flow["encoder.encoders.0.self_attn.linear_pos.weight"] == [512, 512]
    assert flow["decoder.estimator.time_mlp.linear_1.weight"] == [1024, 320]
    assert flow["decoder.estimator.mid_blocks.11.1.3.attn1.to_q.weight"] == [512, 256]
    assert flow["decoder.estimator.up_blocks.0.0.block1.block.0.weight"] == [256, 512, 3]
    assert flow["length_regulator.model.12.weight"] == [80, 80, 1]
    assert hift["conv_pre.weight_v"] == [512, 80, 7] and hift["conv_pre.weight_g"] == [512, 1, 1]
    assert hift["source_downs.0.weight"] == [256, 18, 16] and hift["m_source.l_linear.weight"] == [1, 9]
    assert hift["f0_predictor.condnet.8.weight_v"] == [512, 512, 3]
    n_flow = sum(math.prod(s) for s in flow.values())
    assert 100e6 < n_flow < 110e6  # flow.pt of CosyVoice-300M is ~420 MB in fp32


def test_old_weight_norm_keys_load(tmp_path):
    torch.manual_seed(0)
    src = HiFTGenerator(tiny_config().hift)
    old = {"generator." + k: v for k, v in to_old_weight_norm(src.state_dict()).items()}
    assert any(k.endswith("weight_g") for k in old) and not any("parametrizations" in k for k in old)
    torch.save(old, tmp_path / "hift.pt")
    dst = HiFTGenerator(tiny_config().hift)
    load_hift(dst, tmp_path / "hift.pt")
    mel = torch.randn(1, 80, 12)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.allclose(src.inference(mel, generator=gen()), dst.inference(mel, generator=gen()))


def test_strict_load_names_problems():
    flow = FlowModel(tiny_config().flow)
    sd = flow.state_dict()
    sd.pop("encoder_proj.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["input_embedding.weight"] = torch.zeros(10, 32)
    with pytest.raises(ValueError) as err:
        strict_load(flow, sd, "flow")
    msg = str(err.value)
    assert "encoder_proj.bias" in msg and "extra.weight" in msg and "input_embedding.weight" in msg


def test_cosine_schedule_and_steps():
    span = time_span(10, "cosine")
    assert len(span) == 11 and span[0] == 0 and abs(span[-1] - 1) < 1e-6
    assert torch.allclose(span, 1 - torch.cos(torch.linspace(0, 1, 11) * math.pi / 2))
    assert (span[1:] - span[:-1]).diff().gt(0).all()  # cosine: small steps first


class _Recorder(torch.nn.Module):
    """Stand-in estimator: v = 1 for the conditional row, 3 for the unconditional one."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, mask, mu, t, spks, cond):
        self.calls.append((x.size(0), t.clone(), mu[1:].abs().sum().item() if x.size(0) == 2 else None))
        v = torch.ones_like(x)
        if x.size(0) == 2:
            v[1] = 3.0
        return v


def test_cfg_and_step_count():
    cfg = tiny_config().flow
    cfm = ConditionalCFM(cfg)
    rec = _Recorder()
    cfm.estimator = rec
    z = torch.zeros(1, 80, 5)
    mu = torch.ones(1, 80, 5)
    out = cfm(z, mu, torch.ones(1, 1, 5), torch.ones(1, 80), torch.ones(1, 80, 5), n_timesteps=10)
    assert len(rec.calls) == 10 and all(c[0] == 2 and c[2] == 0 for c in rec.calls)  # uncond row zeroed
    # v = (1 + w) * 1 - w * 3 integrated over t in [0, 1]
    w = cfg.inference_cfg_rate
    assert torch.allclose(out, torch.full_like(out, (1 + w) - 3 * w), atol=1e-5)
    cfm.cfg_rate = 0.0
    rec.calls.clear()
    cfm(z, mu, torch.ones(1, 1, 5), torch.ones(1, 80), torch.ones(1, 80, 5), n_timesteps=4)
    assert len(rec.calls) == 4 and all(c[0] == 1 for c in rec.calls)


def test_regulator_edges_25hz():
    flow = FlowModel(tiny_config().flow)
    reg = flow.length_regulator
    x = torch.randn(1, 100, 80)
    n = frames_for(100, 25)
    assert n == 344 and frames_for(20, 25) == 68
    out = reg.inference(x[:, :0], x, 0, n, 25)
    assert out.shape == (1, n, 80)


def test_bf16_flow_runs_on_cpu():
    from osum_echat.token2wav.model import Token2Wav

    t2w = Token2Wav.from_config(tiny_config(), device="cpu", dtype="bf16")
    wav, _ = t2w.synthesize(list(range(30)))
    assert len(wav) == frames_for(30, 25) * 256 and np.isfinite(wav).all()


@pytest.mark.parametrize("n", [4480, 7296, 8832])
def test_mel_length_is_upstreams_float_formula(n):
    """Upstream sizes the flow output as int(n / 25 * 22050 / 256) in doubles; at these code
    counts that is one frame below the exact integer floor, and so must ours be."""
    exact = n * 22050 // 6400
    assert frames_for(n, 25) == int(n / 25 * 22050 / 256) == exact - 1
    assert release_config().mel_frames(n) == tiny_config().mel_frames(n) == exact - 1
    assert frames_for(n - 1, 25) == (n - 1) * 22050 // 6400  # neighbours agree with the floor


def test_synthesis_sizes_the_flow_with_upstreams_length():
    """The one-shot path (final step of a FlowStreamer) asks the flow for cfg.mel_frames(n)
    frames (flow stubbed: 4480 codes
    through the real tiny flow take minutes on a loaded CPU)."""
    from osum_echat.token2wav.streaming import FlowStreamer, StreamConfig

    asked = []

    def fake_flow(tokens, first, n_frames, pin):
        asked.append((tokens.shape[1], first, n_frames))
        return torch.zeros(1, 80, n_frames)

    n = 4480
    fs = FlowStreamer(fake_flow, tiny_config().mel_frames, StreamConfig())
    fs.push(list(range(n)))
    mel = fs.step(final=True)
    assert asked == [(n, 0, n * 22050 // 6400 - 1)] and mel.shape[-1] == asked[0][2]
