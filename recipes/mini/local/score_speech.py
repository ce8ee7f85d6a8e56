"""Score the spoken replies of one mini decode with the independent reply ASR and add the
figures to the decode folder's ``results.json``.

    python recipes/mini/local/score_speech.py --decode_dir DIR --asr reply_asr.pt --codec codec.pt \
        [--wav_dir DIR/wav] [--threads 2]

For every S2S, S2S+think and TTS key whose speech codes were turned into ``WAV_DIR/<key>.wav``
(stage 5), the reply ASR (``reply_asr.py``: the pre-trained encoder's CTC head, which shares
nothing with the LLM that made the codes) transcribes the audio, and the transcript is scored in
spoken units (``spoken_form.py``: English characters, toneless pinyin syllables for Mandarin):

* ``<task>_spoken_cer``: against the reference reply (the record's label without its leading
  ``<tag>``; for TTS the input text), pooled over the items with audio (``n`` of ``n_items``);
* ``<task>_consistency`` (S2S tasks): against the model's own reply text (``DIR/text``): does
  the audio say what the text says;
* ``<task>_ceiling_cer``: the reference speech codes (``extra.speech_token`` of ``DIR/test.jsonl``)
  through the same codec decoding and ASR, against the reference: what the codec and the ASR
  alone cost;
* ``spoken_cer`` / ``ceiling_cer``: the same pooled over the three tasks;
* ``<task>_other_reply`` (S2S tasks): the replies whose audio says another reply than their
  text: its transcript has at least ``OTHER_MARGIN`` fewer errors against some other candidate
  reply (the references of the decode and ``--replies``, e.g. the corpus's TTS list with every
  reply variant) than against the model's own text; ``count`` of ``n``, and their ``errors``
  of the task's text-speech (consistency) errors.

Transcripts go to ``DIR/reply_transcripts`` and ``DIR/ceiling_transcripts`` (``key<TAB>text``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import torch  # noqa: E402

from osum_echat.eval.score import read_kv  # noqa: E402
from osum_echat.eval.store import read_jsonl  # noqa: E402
from osum_echat.text.normalize import split_leading_tag  # noqa: E402
from spoken_form import language, spoken_errors  # noqa: E402

TASKS = ("s2s", "s2sthink", "tts")
OTHER_MARGIN = 3  # spoken units: closer to another reply by at least this much


def task_of(key: str) -> str:
    return key.rsplit("-", 1)[-1]


def reference_reply(ref: str) -> str:
    """The reply a reference label speaks: S2S labels open with an answer-emotion ``<tag>``."""
    return split_leading_tag(ref)[1]


def pooled(pairs: list[tuple[str, str]]) -> dict:
    """CER of (reference, hypothesis) pairs in spoken units, pooled, and per language."""
    out: dict = {"metric": "spoken_cer", "n": len(pairs)}
    by_lang: dict[str, list[int]] = {}
    for ref, hyp in pairs:
        lang = language(ref)
        c = spoken_errors(ref, hyp, lang)
        acc = by_lang.setdefault(lang, [0, 0, 0])
        acc[0], acc[1], acc[2] = acc[0] + c.errors, acc[1] + c.ref, acc[2] + 1
    errors, ref_tokens = sum(v[0] for v in by_lang.values()), sum(v[1] for v in by_lang.values())
    out.update(cer=errors / ref_tokens if ref_tokens else None, errors=errors, ref_tokens=ref_tokens,
               by_lang={lang: {"cer": e / max(r, 1), "errors": e, "ref_tokens": r, "n": n}
                        for lang, (e, r, n) in sorted(by_lang.items())})
    return out


def other_replies(said: list[tuple[str, str]], candidates: set[str]) -> dict:
    """Of the (reply text, transcript) pairs, those whose transcript is ``OTHER_MARGIN`` spoken
    units closer to another candidate reply (other words) than to the text itself."""
    count = errors = total = 0
    for text, heard in said:
        own = spoken_errors(text, heard).errors
        total += own
        words = reference_reply(text)
        best = min((spoken_errors(c, heard).errors for c in candidates if c != words), default=own)
        if best <= own - OTHER_MARGIN:
            count, errors = count + 1, errors + own
    return {"metric": "other_reply", "n": len(said), "count": count, "errors": errors,
            "consistency_errors": total}


def score_replies(refs: dict[str, str], texts: dict[str, str], heard: dict[str, str],
                  ceiling: dict[str, str], replies: set[str] = frozenset()) -> dict[str, dict]:
    """The results entries (module docstring) from the reference labels, the model's reply
    texts, the transcripts of its audio (keys with audio only) and of the reference codes;
    ``replies``: more candidate replies for ``<task>_other_reply``."""
    candidates = {reference_reply(r) for r in refs.values()} | set(replies)
    res: dict[str, dict] = {}
    all_heard, all_ceiling = [], []
    for task in TASKS:
        keys = sorted(k for k in refs if task_of(k) == task)
        if not keys:
            continue
        pairs = [(reference_reply(refs[k]), heard[k]) for k in keys if k in heard]
        res[f"{task}_spoken_cer"] = dict(pooled(pairs), n_items=len(keys))
        all_heard += pairs
        if task != "tts":  # a TTS "reply text" is its input: the spoken CER above
            # a reply text without words (tags only) has nothing to be consistent with
            said = [(texts[k], heard[k]) for k in keys if k in heard and spoken_errors(texts.get(k, ""), "").ref]
            res[f"{task}_consistency"] = dict(pooled(said), metric="consistency_cer", n_items=len(keys))
            res[f"{task}_other_reply"] = dict(other_replies(said, candidates), n_items=len(keys))
        ref_pairs = [(reference_reply(refs[k]), ceiling[k]) for k in keys if k in ceiling]
        if ref_pairs:
            res[f"{task}_ceiling_cer"] = dict(pooled(ref_pairs), n_items=len(keys))
            all_ceiling += ref_pairs
    if all_heard:
        res["spoken_cer"] = dict(pooled(all_heard), n_items=sum(res[f"{t}_spoken_cer"]["n_items"]
                                                                for t in TASKS if f"{t}_spoken_cer" in res))
    if all_ceiling:
        res["ceiling_cer"] = pooled(all_ceiling)
    return res


def reference_codes(test_list: Path, keys: set[str]) -> dict[str, list[int]]:
    """key -> extra.speech_token of the decoded list's records."""
    out = {}
    with open(test_list, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            codes = (r.get("extra") or {}).get("speech_token")
            if r.get("key") in keys and codes:
                out[r["key"]] = [int(c) for c in codes]
    return out


def write_kv(path: Path, rows: dict[str, str]) -> None:
    path.write_text("".join(f"{k}\t{v}\n" for k, v in sorted(rows.items())), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    from mini_codec import decode_many, key_seed, load_wav
    from reply_asr import ReplyAsr

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--decode_dir", required=True, help="decode folder: ref, text, codes, test.jsonl, results.json")
    p.add_argument("--asr", required=True, help="reply ASR file (pretrain_encoder.py --asr_out)")
    p.add_argument("--codec", required=True, help="the mini codec (for the reference-code ceiling)")
    p.add_argument("--wav_dir", default=None, help="default: DECODE_DIR/wav")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--replies", default=None,
                   help="a JSON-lines list whose 'txt' fields are more candidate replies (other_reply)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    replies = set()  # read first: a bad path fails before the transcription
    if a.replies:
        try:
            replies = {reference_reply(str(r.get("txt", ""))) for r in read_jsonl(a.replies) if isinstance(r, dict)}
        except (OSError, ValueError) as err:
            raise SystemExit(f"--replies: {err}") from None
    d = Path(a.decode_dir)
    wav_dir = Path(a.wav_dir) if a.wav_dir else d / "wav"
    refs = {k: v for k, v in read_kv(d / "ref").items() if task_of(k) in TASKS}
    texts = read_kv(d / "text")
    codes = read_kv(d / "codes") if (d / "codes").is_file() else {}
    asr = ReplyAsr(a.asr)
    # audio = the key has codes and its WAV exists (stage 5 writes a 10 ms stub for empty codes)
    with_audio = sorted(k for k in refs if codes.get(k, "").split() and (wav_dir / f"{k}.wav").is_file())
    heard = dict(zip(with_audio, asr([load_wav(str(wav_dir / f"{k}.wav")) for k in with_audio])))
    ref_codes = reference_codes(d / "test.jsonl", set(refs)) if (d / "test.jsonl").is_file() else {}
    # Griffin-Lim starts from a random phase: one seed per key, decoded in --threads processes
    ref_wavs = decode_many(a.codec, list(ref_codes.values()), [key_seed(k) for k in ref_codes], max(1, a.threads))
    ceiling = dict(zip(ref_codes, asr(ref_wavs)))
    write_kv(d / "reply_transcripts", heard)
    write_kv(d / "ceiling_transcripts", ceiling)
    res = score_replies(refs, texts, heard, ceiling, replies - {""})
    path = d / "results.json"
    results = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    results.update(res)
    path.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    for name, s in res.items():
        if s["metric"] == "other_reply":
            print(f"{name:22s} {s['count']} of {s['n']} ({s['errors']} of {s['consistency_errors']} errors)")
            continue
        cer = "-" if s["cer"] is None else f"{100 * s['cer']:.1f} %"
        print(f"{name:22s} {cer} (n={s['n']}{' of ' + str(s['n_items']) if 'n_items' in s else ''})")


if __name__ == "__main__":
    main()
