"""Family mixture and exact resume (batch by batch, in-process and with 2 workers)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest
from data_helpers import data_cfg, make_wav, same_batch, write_jsonl

from osum_echat.data.loader import build_loader
from osum_echat.data.writers import make_shards


@pytest.fixture(scope="module")
def family_lists(tmp_path_factory):
    d = tmp_path_factory.mktemp("fam")
    asr = [{"key": f"asr{i}", "wav": make_wav(d / f"a{i}.wav", 0.3 + 0.07 * i, seed=i),
            "txt": f"hello world {i}", "task": "<TRANSCRIBE> <EMOTION>" if i % 2 else "<TRANSCRIBE>"}
           for i in range(12)]
    raw = write_jsonl(d / "asr.jsonl", [dict(r, txt=r["txt"] + ("<HAPPY>" if i % 2 else ""))
                                        for i, r in enumerate(asr)])
    make_shards([raw], str(d / "asr_shards"), num_per_tar=6)
    s2s_recs = [
        {"key": f"s2s{i}", "wav": make_wav(d / f"s{i}.wav", 0.4 + 0.05 * i, sr=22050 if i % 2 else 16000,
                                           seed=50 + i),
         "txt": "i am fine thanks", "task": "<S2TCHAT> <TEXT2TOKEN>",
         "extra": {"speech_token": list(range(30 + i))}} for i in range(7)]
    for r in s2s_recs[:3]:  # multi-turn samples: one past turn with reply codes
        r.update(wav_1=make_wav(d / f"h{r['key']}.wav", 0.3, sr=24000), txt_1="hello world")
        r["extra"]["speech_token_1"] = [7, 8, 9]
    s2s = write_jsonl(d / "s2s.jsonl", s2s_recs)
    t2t = write_jsonl(d / "t2t.jsonl", [
        {"key": f"t2t{i}", "txt": "what is the weather like" * (1 + i % 3), "task": "<TEXT2TEXT>",
         "extra": {"question": "hello world"}} for i in range(5)])
    return {"s2t": str(d / "asr_shards/shards_list.txt"), "s2s": s2s, "t2t": t2t}


def _cfg(**kw):
    base = {"augment__spec_aug": True, "augment__spec_sub": True, "augment__speed_perturb": True,
            "only_x_rate": 0.5, "batch__shuffle_size": 4, "batch__sort_size": 3,
            "batch__max_tokens_in_batch": 260, "batch__batch_size": 3, "drop_log_interval": 0}
    base.update(kw)
    return data_cfg(**base)


def _take(loader, n):
    out = []
    for b in loader:
        out.append(b)
        if len(out) == n:
            break
    return out


@pytest.mark.parametrize("workers,cut,on_device", [(0, 7, False), (2, 5, False), (0, 6, True)])
def test_resume_equals_uninterrupted(family_lists, tiny_tok, workers, cut, on_device):
    total = 16
    cfg = _cfg(num_workers=workers, features_on_device=on_device)
    ref = _take(build_loader(cfg, family_lists, tiny_tok), total)
    first = build_loader(cfg, family_lists, tiny_tok)
    head = _take(first, cut)
    state = first.state_dict()
    assert state["step"] == cut
    resumed = build_loader(cfg, family_lists, tiny_tok)
    resumed.load_state_dict(state)
    tail = _take(resumed, total - cut)
    got = head + tail
    assert len(got) == len(ref) == total
    for i, (a, b) in enumerate(zip(ref, got)):
        assert same_batch(a, b), f"batch {i} differs"
        if a.audio_slots.numel():
            assert (a.wavs is not None) == on_device
    epochs = [f["epoch"] for c in resumed.state_dict()["workers"].values() for f in c["families"].values()]
    assert max(epochs) >= 1  # the run crossed an epoch boundary of at least one family
    mid = [f["batches"] for c in state["workers"].values() for f in c["families"].values()]
    assert max(mid) > 0  # and the cut fell inside an epoch


def test_mixture_same_on_all_ranks(family_lists, tiny_tok):
    cfg = _cfg(mix_weights={"s2t": 2.0, "s2s": 1.0, "t2t": 1.0})
    seqs = []
    for rank in (0, 1):
        ld = build_loader(cfg, family_lists, tiny_tok, rank=rank, world_size=2)
        seqs.append([b.families[0] for b in _take(ld, 20)])
    assert seqs[0] == seqs[1]
    assert set(seqs[0]) == {"s2t", "s2s", "t2t"}


def test_drop_policy_one_pass_per_family(family_lists, tiny_tok):
    cfg = _cfg(on_exhaust="drop", only_x_rate=0.0, mix_weights={"s2t": 1.0, "s2s": 0.0, "t2t": 5.0})
    batches = list(build_loader(cfg, family_lists, tiny_tok))
    keys = [k for b in batches for k in b.keys]
    assert sorted(keys) == sorted([f"asr{i}" for i in range(12)] + [f"t2t{i}" for i in range(5)])
    hist = build_loader(_cfg(), {"s2s": family_lists["s2s"]}, tiny_tok, train=False)
    tasks = [t for b in hist for t in b.tasks]
    assert tasks.count("<S2TCHAT> <TEXT2TOKEN> <HISTORY>") == 3 and len(tasks) == 7
    fams = [b.families[0] for b in batches]  # weight 0 switches s2s off
    assert fams[-1] == "s2t" and fams.count("t2t") < len(fams) / 2  # t2t ran out first


def test_state_mismatch_rejected(family_lists, tiny_tok):
    ld = build_loader(_cfg(), family_lists, tiny_tok)
    _take(ld, 2)
    other = build_loader(_cfg(seed=1), family_lists, tiny_tok)
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(ld.state_dict())


def test_partition_covers_every_sample_once(family_lists, tiny_tok):
    """2 ranks x 2 workers: by line for the 2-tar list, by sample for the 1-line lists."""
    cfg = _cfg(num_workers=2)
    keys = []
    for rank in (0, 1):
        ld = build_loader(cfg, family_lists, tiny_tok, rank=rank, world_size=2, train=False)
        keys += [k for b in ld for k in b.keys]
    want = [f"asr{i}" for i in range(12)] + [f"s2s{i}" for i in range(7)] + [f"t2t{i}" for i in range(5)]
    assert sorted(keys) == sorted(want)


def test_pipeline_threads_in_main_process(family_lists, tiny_tok, monkeypatch):
    """num_workers 0: the pipeline runs with ``pipeline_threads`` torch threads and the
    caller's setting is back whenever a batch is handed over."""
    import torch

    from osum_echat.data import pipeline

    seen = []
    real = pipeline.features

    def spy(samples, ctx):
        for s in real(samples, ctx):
            seen.append(torch.get_num_threads())
            yield s

    monkeypatch.setattr(pipeline, "features", spy)  # sample_stages looks stages up per call
    outer = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        ld = build_loader(_cfg(pipeline_threads=1), family_lists, tiny_tok, train=False)
        for _ in ld:
            assert torch.get_num_threads() == 3
        assert seen and set(seen) == {1}
        seen.clear()
        for _ in build_loader(_cfg(pipeline_threads=0), family_lists, tiny_tok, train=False):
            pass
        assert set(seen) == {3}
    finally:
        torch.set_num_threads(outer)


def test_worker_result_pipe_is_widened(family_lists, tiny_tok, monkeypatch):
    """With workers, the result pipe holds a whole batch (1 MB instead of Linux's 64 KB)."""
    import fcntl

    from osum_echat.data import loader as loader_mod

    try:
        limit = int(open("/proc/sys/fs/pipe-max-size").read())
    except OSError:
        pytest.skip("no /proc/sys/fs/pipe-max-size (not Linux)")
    if limit < loader_mod.RESULT_PIPE_BYTES or not hasattr(fcntl, "F_SETPIPE_SZ"):
        pytest.skip("pipes cannot grow to 1 MB here")
    sizes = []
    real = loader_mod._widen_result_pipe
    monkeypatch.setattr(loader_mod, "_widen_result_pipe", lambda it: sizes.append(real(it)) or sizes[-1])
    got = _take(build_loader(_cfg(num_workers=1), family_lists, tiny_tok), 3)
    assert len(got) == 3 and sizes == [loader_mod.RESULT_PIPE_BYTES]
