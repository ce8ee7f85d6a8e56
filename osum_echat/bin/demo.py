"""Gradio demo over one or both released checkpoints.

    python -m osum_echat.bin.demo --checkpoint language_think_final.pt --checkpoint_tag language_think \
        --checkpoint tag_think_final.pt --checkpoint_tag tag_think \
        --config conf/model/osum_echat_3b.yaml --tokenizer /models/Qwen2.5-3B-Instruct \
        --token2wav_dir /models/CosyVoice-300M-25Hz --device auto --dtype bf16 --port 7860

A checkpoint tag containing "tag" loads with ``text.think_style=tag``. OSUM (the base
understanding model, its eight tasks)::

    python -m osum_echat.bin.demo --model osum --checkpoint infer.pt --tokenizer /models/Qwen2-7B-Instruct
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", action="append", required=True)
    p.add_argument("--checkpoint_tag", action="append", default=[])
    p.add_argument("--config", default=None)
    p.add_argument("--model", choices=("echat", "osum"), default="echat",
                   help="model family: default --config, the demo's task list and title")
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--token2wav_dir", default=None)
    p.add_argument("--voice", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=7860)
    args, overrides = p.parse_known_args(argv)
    from osum_echat.bin.checks import need_model_inputs

    need_model_inputs(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from osum_echat.generate.echat import MODEL_CONFIGS, EChat
    from osum_echat.serve.gradio_app import build_app

    tags = args.checkpoint_tag or [f"model{i}" for i in range(len(args.checkpoint))]
    if len(tags) != len(args.checkpoint):
        raise SystemExit("give one --checkpoint_tag per --checkpoint")
    bots = {}
    config = args.config or str(MODEL_CONFIGS[args.model])
    for tag, ckpt in zip(tags, args.checkpoint):
        ov = list(overrides) + (["text.think_style=tag"] if "tag" in tag else [])
        bots[tag] = EChat.from_pretrained(ckpt, config, args.tokenizer, args.device, args.dtype,
                                          args.token2wav_dir, ov, voice=args.voice)
    title = "OSUM" if args.model == "osum" else "OSUM-EChat"
    build_app(bots, title, mode=args.model).launch(server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
