"""VoiceBench readers (parquet and JSONL layouts, all 9 subsets) and the suite end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import eval_helpers as H  # noqa: E402

from osum_echat.bin.evaluate import main  # noqa: E402
from osum_echat.eval import voicebench  # noqa: E402

EXTRA = {"sd-qa": {"reference": "Paris"}, "mmsu": {"reference": "B"}, "openbookqa": {"reference": "A"},
         "bbh": {"reference": "yes", "id": "navigate_3"},
         "ifeval": {"key": 7, "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}}


def write_voicebench(root: Path, parquet: bool) -> Path:
    """One row per subset; parquet files with audio bytes (the released layout) or JSONL + wav paths."""
    for i, sub in enumerate(voicebench.SUBSETS):
        wav = Path(H.write_wav(root / "_wav" / f"{sub}.wav", seed=i))
        row = {"prompt": f"question {i}", **EXTRA.get(sub, {})}
        split = "usa" if sub == "sd-qa" else "test"
        (root / sub).mkdir(parents=True)
        if parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            row = dict(row, audio={"bytes": wav.read_bytes(), "path": wav.name})
            if "kwargs" in row:
                row["kwargs"] = json.dumps(row["kwargs"])
            pq.write_table(pa.Table.from_pylist([row]), root / sub / f"{split}-00000-of-00001.parquet")
        else:
            H.write_jsonl(root / sub / f"{split}.jsonl", [dict(row, audio=f"../_wav/{sub}.wav")])
    return root


@pytest.mark.parametrize("parquet", [False, True])
def test_reader_all_subsets(tmp_path, parquet):
    if parquet:
        pytest.importorskip("pyarrow")
    root = write_voicebench(tmp_path / "vb", parquet)
    items = voicebench.read(root, tmp_path / "out")
    assert [it["category"] for it in items] == list(voicebench.SUBSETS)
    by = {it["category"]: it for it in items}
    assert by["sd-qa"]["split"] == "usa" and by["sd-qa"]["reference"] == "Paris"
    assert by["ifeval"]["kwargs"] == [{}] and by["bbh"]["id"] == "navigate_3"
    assert all(Path(it["wav"]).is_file() for it in items)


def test_reader_names_missing_field(tmp_path):
    root = write_voicebench(tmp_path / "vb", False)
    H.write_jsonl(root / "mmsu" / "test.jsonl", [{"prompt": "q", "audio": "../_wav/mmsu.wav"}])
    with pytest.raises(ValueError, match="mmsu needs 'reference'"):
        voicebench.read(root, tmp_path / "out")


def test_aggregate_overall_like_the_leaderboard():
    def it(cat, **kw):
        return {"category": cat, "scores": kw.pop("scores", {}), **kw}
    items = [it("alpacaeval", judge={"score": 4.0, "raw": "4"}),
             it("mmsu", scores={"mcq": {"correct": True, "parsed": True}}),
             it("mmsu", scores={"mcq": {"correct": False, "parsed": False}}),
             it("advbench", scores={"refusal": True})]
    res = voicebench.aggregate(items)
    cats = res["by_category"]
    assert cats["alpacaeval"]["score"] == 80.0 and cats["mmsu"]["score"] == 50.0 and cats["mmsu"]["unparsed"] == 1
    assert res["overall"] == pytest.approx((80 + 50 + 100) / 3) and not res["overall_complete"]


def test_voicebench_end_to_end(tmp_path, tiny_tokenizer):
    files = H.model_files(tmp_path / "m", tiny_tokenizer)
    root = write_voicebench(tmp_path / "vb", False)
    out = tmp_path / "o"
    assert main(H.cli(files, "voicebench", str(root), out)) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["by_category"]) == set(voicebench.SUBSETS)
    assert res["by_category"]["alpacaeval"]["score"] is None  # rule judge: absent, not 0
    assert res["overall_subsets"] == ["advbench", "bbh", "ifeval", "mmsu", "openbookqa"]
    assert "Kimi-Audio" in (out / "report.md").read_text()


def test_humdial_converter(tmp_path):
    from osum_echat.bin.humdial_to_echat import main as convert_main
    from osum_echat.eval.echat_eval import read_manifest

    H.write_wav(tmp_path / "audio" / "d1_t3.wav")
    dialogues = [
        {"dialogue_id": "d1", "turns": [
            {"input_emotion": "neutral", "input_text": "hi", "input_audio": "audio/d1_t1.wav"},
            {"input_emotion": "sad", "input_text": "my cat is ill", "input_audio": "audio/d1_t2.wav"},
            {"input_emotion": "Sad", "input_text": "the vet said it is serious", "input_audio": "audio/d1_t3.wav"},
            {"input_emotion": "angry", "input_text": "ignored", "input_audio": "audio/d1_t4.wav"}]},
        {"dialogue_id": "d2", "turns": [{"emotion": "happy", "text": "only one", "audio": "a.wav"}]},
        {"dialogue_id": "d3", "turns": [{"emotion": "happy", "text": "a", "audio": "a.wav"},
                                        {"emotion": "bored", "text": "b", "audio": "b.wav"}]},
    ]
    src = H.write_jsonl(tmp_path / "task3.jsonl", dialogues)
    assert convert_main(["--src", src, "--out", str(tmp_path / "m.jsonl"), "--lang", "en"]) == 0
    items = read_manifest(tmp_path / "m.jsonl")
    assert [it["key"] for it in items] == ["d1"]  # d2: no second non-neutral turn; d3: unknown emotion
    it = items[0]
    assert it["labels"] == {"emotion": "sad"} and Path(it["wav"]) == tmp_path / "audio" / "d1_t3.wav"
    assert it["query"].splitlines() == ["User(neutral): hi", "User(sad): my cat is ill",
                                        "User: the vet said it is serious"]
