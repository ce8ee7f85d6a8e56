"""Judge plumbing: a tiny random HF causal LM folder made here, batched; strict parsing counts
unparseable answers; judge answers are cached and reused on a rerun."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import eval_helpers as H  # noqa: E402

from osum_echat.bin.evaluate import main  # noqa: E402
from osum_echat.eval import judges  # noqa: E402


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory, tiny_tokenizer):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    d = tmp_path_factory.mktemp("judge")
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tiny_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512)
    Qwen2ForCausalLM(cfg).save_pretrained(str(d))
    tiny_tokenizer.save_pretrained(str(d))
    return d


def test_hf_judge_batched_strict_parsing(hf_folder):
    j = judges.load_judge(f"hf:{hf_folder}")
    prompts = ["rate this: hello", "rate a much longer reply with many more words in it", "x"]
    verdicts = j.score(prompts)
    assert len(verdicts) == 3 and all(isinstance(v.raw, str) for v in verdicts)
    for v in verdicts:  # a value only when the raw answer is a clean score
        assert v.value == judges.parse_score(v.raw) and v.parsed == (v.value is not None)
    assert [v.raw for v in j.score(prompts[:1])] == [verdicts[0].raw]  # batch padding changes nothing


class _Fixed(judges.Judge):
    name = "fixed"

    def __init__(self, answers):
        self.answers, self.calls = answers, 0

    def complete(self, prompts):
        self.calls += len(prompts)
        return [self.answers[i % len(self.answers)] for i in range(len(prompts))]


def test_unparsed_counted_and_cache(tmp_path, tiny_tokenizer, monkeypatch):
    files = H.model_files(tmp_path / "m", tiny_tokenizer)
    rows = [{"key": f"e{i}", "wav": H.write_wav(tmp_path / f"e{i}.wav", seed=i), "category": "emotion",
             "labels": {"emotion": "sad"}} for i in range(3)]
    data = H.write_jsonl(tmp_path / "m.jsonl", rows)
    fixed = _Fixed(["4", "great reply!", "2"])
    monkeypatch.setattr(judges, "load_judge", lambda spec, device="cpu": fixed)
    out = tmp_path / "o"
    assert main(H.cli(files, "echat", data, out)) == 0
    row = json.loads((out / "results.json").read_text())["by_category"]["emotion"]["judge"]
    assert row == {"mean": 3.0, "n": 2, "unparsed": 1, "score_100": 60.0}
    assert (out / "judge_hist.png").exists()
    calls = fixed.calls
    assert main(H.cli(files, "echat", data, out)) == 0  # rerun: answers come from judge.jsonl
    assert fixed.calls == calls


def test_hf_judge_end_to_end(tmp_path, tiny_tokenizer, hf_folder):
    files = H.model_files(tmp_path / "m", tiny_tokenizer)
    rows = [{"key": "e0", "wav": H.write_wav(tmp_path / "e0.wav"), "category": "age", "labels": {"age": "old"}}]
    out = tmp_path / "o"
    assert main(H.cli(files, "echat", H.write_jsonl(tmp_path / "m.jsonl", rows), out, "--judge",
                      f"hf:{hf_folder}")) == 0
    item = json.loads((out / "items.jsonl").read_text().splitlines()[0])
    assert item["judge"]["raw"] is not None and item["judge"]["judge"].startswith("hf:")
