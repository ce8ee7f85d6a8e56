"""One utterance through OSUM-EChat, with warm-up and timing figures.

    python infer_runtime.py --task s2s_think --wav q.wav --checkpoint language_think_final.pt \
        --config conf/model/osum_echat_3b.yaml --tokenizer /models/Qwen2.5-3B-Instruct \
        --token2wav_dir /models/CosyVoice-300M-25Hz --voice prompt.wav --out out/ --device auto --dtype bf16
    python infer_runtime.py --task understand --wav q.wav --instruction "请识别说话人的情感。" ...
    python infer_runtime.py --task tts --text "你好" ...

OSUM (the base understanding model, ``--model osum``: default config conf/model/osum_7b.yaml)::

    python infer_runtime.py --model osum --task sgc --wav q.wav --checkpoint infer.pt \
        --tokenizer /models/Qwen2-7B-Instruct --device auto --dtype bf16

Tasks: asr | understand | s2t_chat | s2t_think | tts | t2t | s2s | s2s_think, and OSUM's
srwt | ved | ser | ssr | sgc | sap | sttc (``--task_tag`` takes any catalogue tag, e.g.
"<TRANSCRIBE> <AGE> <GENDER>"). SRWT replies also print the parsed (token, start, end) records.
Prints the think and text, writes ``OUT/codes.txt`` for speech tasks (and ``OUT/reply.wav`` with
--token2wav_dir), ``OUT/reply.json`` (text, think, codes, timings, SRWT timestamps). Sampling overrides: --temperature, --top_k,
--top_p, --repetition_penalty, --greedy, --max_new_tokens, --seed, --ngram_block, or any dotted
override (``generate.s2s.top_k=5``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

TASKS = ("asr", "understand", "s2t_chat", "s2t_think", "tts", "t2t", "s2s", "s2s_think",
         "srwt", "ved", "ser", "ssr", "sgc", "sap", "sttc")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("echat", "osum"), default="echat",
                   help="model family: picks the default --config")
    p.add_argument("--task", choices=TASKS, default=None)
    p.add_argument("--task_tag", default=None, help="any task tag of the catalogue (instead of --task)")
    p.add_argument("--wav", default=None)
    p.add_argument("--text", default=None)
    p.add_argument("--instruction", default=None)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--token2wav_dir", default=None)
    p.add_argument("--voice", default=None, help="prompt wav for the speaker timbre")
    p.add_argument("--out", default="infer_out")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed one")
    for name, tp in (("temperature", float), ("top_k", int), ("top_p", float),
                     ("repetition_penalty", float), ("max_new_tokens", int)):
        p.add_argument(f"--{name}", type=tp, default=None)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--ngram_block", action="store_true", help="enable the speech n-gram blocker")
    return p.parse_known_args(argv)


def sampling_overrides(args) -> list[str]:
    """CLI sampling flags -> dotted overrides of this task's policy."""
    from osum_echat.data.tasks import get_spec
    from osum_echat.generate.echat import policy_name, task_tag

    policy = policy_name(get_spec(task_tag(args.task), "understand"))
    out = [f"generate.{policy}.{k}={getattr(args, k)}" for k in
           ("temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens")
           if getattr(args, k) is not None]
    if args.greedy:
        out.append(f"generate.{policy}.greedy=true")
    elif any(getattr(args, k) is not None for k in ("temperature", "top_k", "top_p")):
        out.append(f"generate.{policy}.greedy=false")  # asking for sampling settings means sampling
    if args.seed is not None:
        out.append(f"generate.seed={args.seed}")
    if args.ngram_block:
        out.append("generate.ngram_block.enable=true")
    return out


def check_inputs(args) -> None:
    """Every input path, before anything is loaded: one line (option, path, why) on error."""
    from osum_echat.bin.checks import InputError, need_audio, need_model_inputs
    from osum_echat.data.tasks import get_spec
    from osum_echat.generate.echat import task_tag

    spec = get_spec(task_tag(args.task), "understand")
    text_in = spec.text_input or spec.family == "t2t"
    if not text_in and not args.wav:
        raise InputError(f"error: --task {args.task} needs --wav (the spoken input)")
    if text_in and not args.text:
        raise InputError(f"error: --task {args.task} needs --text")
    need_audio(args.wav, "--wav")
    need_model_inputs(args)


def main(argv=None) -> int:
    args, extra = parse_args(argv)
    bad = [o for o in extra if "=" not in o]
    if bad:
        raise SystemExit(f"error: unknown arguments {bad} (overrides look like a.b=value)")
    if (args.task is None) == (args.task_tag is None):
        raise SystemExit("error: give exactly one of --task and --task_tag")
    args.task = args.task or args.task_tag
    check_inputs(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from osum_echat.audio.io import save_wav
    from osum_echat.generate.echat import MODEL_CONFIGS, EChat, task_tag

    config = args.config or str(MODEL_CONFIGS[args.model])
    bot = EChat.from_pretrained(args.checkpoint, config, args.tokenizer, args.device, args.dtype,
                                args.token2wav_dir, [o.lstrip("-") for o in extra] + sampling_overrides(args),
                                voice=args.voice)
    kw = dict(wav=args.wav, text=args.text, instruction=args.instruction)
    for _ in range(max(0, args.warmup)):
        bot.run(args.task, **kw)
    reply = bot.run(args.task, **kw)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if reply.think:
        print(f"think: {reply.think}")
    print(f"text: {reply.text}")
    records = None
    if task_tag(args.task) == "<TRANSCRIBE> <ALIGN>":
        from osum_echat.eval.srwt import parse_srwt

        records = [[t.token, t.start, t.end] for t in parse_srwt(reply.text)[0]]
        print(f"timestamps: {records}")
    if reply.speech_codes or args.task in ("tts", "s2s", "s2s_think"):
        (out / "codes.txt").write_text(" ".join(map(str, reply.speech_codes)) + "\n", encoding="utf-8")
        print(f"speech: {len(reply.speech_codes)} codes -> {out / 'codes.txt'}")
    if reply.wav is not None and len(reply.wav):
        save_wav(out / "reply.wav", reply.wav, reply.sample_rate)
        print(f"audio: {len(reply.wav) / reply.sample_rate:.2f} s -> {out / 'reply.wav'}")
    t = reply.timings
    print(f"timing: prefill {t['prefill_ms']:.1f} ms, first token {t['first_token_ms']:.1f} ms, "
          f"{t['new_tokens']} tokens, {t['ms_per_token']:.2f} ms/token, {t['tokens_per_s']:.1f} tokens/s "
          f"(stop: {reply.stop_reason})")
    (out / "reply.json").write_text(json.dumps(
        {"task": args.task, "think": reply.think, "text": reply.text, "speech_codes": reply.speech_codes,
         "stop_reason": reply.stop_reason, "timings": t,
         **({"timestamps": records} if records is not None else {})}, ensure_ascii=False, indent=1),
        encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
