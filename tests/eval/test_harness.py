"""``python -m osum_echat.bin.evaluate`` end to end on test-made data with a tiny random model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import eval_helpers as H  # noqa: E402

from osum_echat.bin.evaluate import main  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_tokenizer):
    return H.model_files(tmp_path_factory.mktemp("m"), tiny_tokenizer)


def _understanding_list(d: Path) -> str:
    rows = [
        {"key": "u1", "wav": H.write_wav(d / "u1.wav", seed=1), "task": "<TRANSCRIBE>", "txt": "hello world"},
        {"key": "u2", "wav": H.write_wav(d / "u2.wav", seed=2), "task": "<TRANSCRIBE>", "txt": "今天天气真好"},
        {"key": "u3", "wav": H.write_wav(d / "u3.wav", seed=3), "task": "<GENDER>", "txt": "<MALE>"},
        {"key": "u4", "wav": H.write_wav(d / "u4.wav", seed=4), "task": "<TRANSCRIBE> <EMOTION>",
         "txt": "i am fine<HAPPY>"},
        {"key": "u5", "wav": H.write_wav(d / "u5.wav", seed=5), "task": "<TRANSCRIBE> <ALIGN>",
         "txt": "<0>hello<4> <5>world<9>"},
    ]
    return H.write_jsonl(d / "data.list", rows)


def test_understanding_end_to_end_and_resume(files, tmp_path):
    data = _understanding_list(tmp_path / "d")
    out = tmp_path / "o"
    assert main(H.cli(files, "understanding", data, out)) == 0
    res = json.loads((out / "results.json").read_text())
    items = [json.loads(ln) for ln in (out / "items.jsonl").read_text().splitlines()]
    assert [it["key"] for it in items] == ["u1", "u2", "u3", "u4", "u5"]
    assert res["asr"]["cer"]["n"] == 1 and res["asr"]["wer"]["n"] == 3  # zh by char; en (and SRWT) by word
    assert res["asr"]["cer"]["ref_tokens"] == 6 and res["asr"]["wer"]["ref_tokens"] == 2 + 3 + 2
    assert res["tag_gender"]["n"] == 1 and "MALE" in res["tag_gender"]["confusion"]
    assert res["tag_emotion"]["confusion"].keys() == {"HAPPY"}
    assert res["srwt"]["n"] == 1
    assert (out / "report.md").read_text().count("|") > 10
    assert (out / "confusion_gender.png").stat().st_size > 1000 and (out / "plot_categories.png").exists()
    assert (out / "plot_asr.png").exists() and "plot_asr.png" in res["plots"]
    # interrupted run: the last generated line is cut in half, results.json removed; rerun resumes
    first = (out / "results.json").read_text()
    text = out / "gen" / "split" / "0" / "text"
    lines = text.read_text(encoding="utf-8").splitlines(keepends=True)
    text.write_text("".join(lines[:3]) + lines[3][:2], encoding="utf-8")
    (out / "results.json").unlink()
    assert main(H.cli(files, "understanding", data, out)) == 0
    assert (out / "results.json").read_text() == first


def _echat_manifest(d: Path) -> str:
    rows = [{"key": f"e{i}", "wav": H.write_wav(d / f"e{i}.wav", seed=10 + i), "category": c, "labels": lab,
             "query": "i lost my keys", "reference": "oh no, let me help"}
            for i, (c, lab) in enumerate([("emotion", {"emotion": "sad"}), ("age", {"age": "child"}),
                                          ("gender", {"gender": "女"}), ("multi", {"emotion": "<HAPPY>",
                                                                                  "age": "old"})])]
    return H.write_jsonl(d / "echat.jsonl", rows)


def test_echat_rule_judge_think_and_consistency(files, tmp_path):
    data = _echat_manifest(tmp_path / "d")
    out = tmp_path / "o"
    assert main(H.cli(files, "echat", data, out, "--think", "on", "--vocoder", files["vocoder"])) == 0
    res = json.loads((out / "results.json").read_text())
    items = [json.loads(ln) for ln in (out / "items.jsonl").read_text().splitlines()]
    assert res["judge"] == "rule"
    assert all(it["judge"]["score"] is None and it["judge"]["raw"] is None for it in items)  # absent, not 0
    assert res["by_category"]["all"]["judge"]["mean"] is None
    assert set(items[3]["scores"]["think_names"]) == {"emotion", "age"}
    with_audio = [it for it in items if it["n_codes"]]
    assert all(it["transcript"] is not None for it in with_audio)
    from osum_echat.eval.wer import normalize_for_scoring

    assert all(("consistency" in it["scores"]) == bool(normalize_for_scoring(it["reply"])) for it in with_audio)
    assert "Published figures" in (out / "report.md").read_text()
    assert "58.00" in (out / "report.md").read_text()


def test_echat_bad_manifest_names_line(files, tmp_path):
    data = H.write_jsonl(tmp_path / "bad.jsonl", [{"key": "a", "wav": "x.wav", "category": "weather"}])
    with pytest.raises(ValueError, match="bad.jsonl:1: category"):
        main(H.cli(files, "echat", data, tmp_path / "o"))


def test_jobs_give_the_same_results_and_settings_are_checked(files, tmp_path):
    data = _understanding_list(tmp_path / "d")
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(H.cli(files, "understanding", data, one, "--batch_size", "1")) == 0
    assert main(H.cli(files, "understanding", data, two, "--batch_size", "1", "--nj", "2")) == 0
    assert (two / "gen" / "split" / "1" / "text").exists()  # two generation processes ran
    rows = [[json.loads(ln) for ln in (d / "items.jsonl").read_text().splitlines()] for d in (one, two)]
    assert rows[0] == rows[1]
    with pytest.raises(SystemExit, match="other settings"):
        main(H.cli(files, "understanding", data, one, "--limit", "2"))


def test_understanding_reads_shards_and_segments(tmp_path):
    """The understanding reader takes shard lists (audio bytes) and raw segments: both become
    local wavs of a raw list, with task and reference kept."""
    from osum_echat.data.writers import write_shard
    from osum_echat.eval.run import RunConfig, prepare

    recs = [{"key": f"s{i}", "wav": H.write_wav(tmp_path / f"s{i}.wav", seconds=1.0, seed=i), "txt": "<MALE>",
             "task": "<GENDER>"} for i in range(2)]
    assert write_shard(recs, str(tmp_path / "a.tar"), {}) == 2
    (tmp_path / "shards.list").write_text(str(tmp_path / "a.tar") + "\n")
    items = prepare(RunConfig(suite="understanding", data=str(tmp_path / "shards.list"), out=str(tmp_path / "o")))
    assert [(it["key"], it["task"], it["reference"]) for it in items] == [("s0", "<GENDER>", "<MALE>"),
                                                                          ("s1", "<GENDER>", "<MALE>")]
    listed = [json.loads(ln) for ln in (tmp_path / "o" / "list.jsonl").read_text().splitlines()]
    assert all(Path(r["wav"]).parent == tmp_path / "o" / "audio" and Path(r["wav"]).is_file() for r in listed)
    seg = H.write_jsonl(tmp_path / "seg.list", [dict(recs[0], start=0.2, end=0.7)])
    prepare(RunConfig(suite="understanding", data=seg, out=str(tmp_path / "o2")))
    import soundfile as sf

    wav = json.loads((tmp_path / "o2" / "list.jsonl").read_text())["wav"]
    assert sf.info(wav).frames == 8000  # the 0.5 s segment, cut
