"""Data-list YAMLs of the three training stages (input of common_utils/expand_data_lists.py).

    python recipes/mini/local/write_data_yamls.py --data_dir DATA --out_dir DATA/lists

stage 1, ASR warm-up:    ASR shards, the gender combine relabel (<TRANSCRIBE> <GENDER>)
stage 1 (understanding): ASR shards x2, the combine, tag records; text chat
stage 2 (generation):    + spoken chat (<S2TCHAT>) x4, TTS, S2S; ASR x2, tag records replayed
stage 3 (empathy):       + think chat (<S2TCHAT> <THINKER>), S2S with think (--think_following:
                         + their think-following copies, think_cf.jsonl and s2sthink_cf.jsonl)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml


def stage_entries(d: Path, think_following: bool = False) -> dict[str, dict[str, dict]]:
    def e(path: Path, family: str, weight: float = 1) -> dict:
        return {"path": str(path), "weight": weight, "family": family}

    s1a = {"asr_shards": e(d / "shards/shards_list.txt", "s2t"),
           "gender_relabel": e(d / "gender_combine/combines_list.txt", "s2t")}
    s1 = {**s1a, "asr_shards": e(d / "shards/shards_list.txt", "s2t", 2), "tags": e(d / "train/s2t.jsonl", "s2t"),
          "text_chat": e(d / "train/t2t.jsonl", "t2t", 5)}
    # stages 2-3 replay ASR twice (with stage 1's proportions the held-out CER rose from 35 % to
    # 54 % over stages 2-3) and the tag records (at half weight, age fell to chance over the
    # longer stages 2-3; README, "What limits the tiny model")
    replay = {"asr_shards": e(d / "shards/shards_list.txt", "s2t", 2), "gender_relabel": s1a["gender_relabel"],
              "tags": e(d / "train/s2t.jsonl", "s2t", 1), "text_chat": s1["text_chat"]}
    s2 = {**replay, "spoken_chat": e(d / "train/chat.jsonl", "s2t", 4),
          "tts": e(d / "train/t2s.jsonl", "t2s"), "s2s": e(d / "train/s2s.jsonl", "s2s")}
    # think-heavy: with think chat x2 and S2S+think x1 the reply ignored its own think (it
    # followed the think's emotion in 40-60 % of the replies that depend on it; README)
    s3 = {**s2, "think_chat": e(d / "train/think.jsonl", "s2t", 6),
          "s2s_think": e(d / "train/s2sthink.jsonl", "s2s", 2)}
    # opt-in (run.sh --think_following true): think-following copies (think_following.py: the
    # think names another emotion / age group, the reply follows it, the think carries no loss),
    # as many as the real speaker-dependent think examples; in three stage-3 seeds they did not
    # make S2S+think beat S2S on the speaker-dependent replies (README)
    if think_following:
        s3.update(think_following=e(d / "train/think_cf.jsonl", "s2t", 6),
                  s2s_think_following=e(d / "train/s2sthink_cf.jsonl", "s2s", 2))
    return {"1_asr": s1a, "1": s1, "2": s2, "3": s3}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True)
    p.add_argument("--out_dir", required=True)
    p.add_argument("--think_following", action="store_true",
                   help="stage 3 adds train/think_cf.jsonl and train/s2sthink_cf.jsonl (think_following.py)")
    a = p.parse_args()
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for n, entries in stage_entries(Path(a.data_dir).resolve(), a.think_following).items():
        with open(out / f"stage{n}.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(entries, f, sort_keys=False)


if __name__ == "__main__":
    main()
