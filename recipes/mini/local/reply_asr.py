"""The mini recipe's reply ASR: the pre-trained encoder with its CTC head (stage 2a), kept to
transcribe the spoken replies independently of the model under test.

The model's own ``<TRANSCRIBE>`` task cannot judge its replies: its LLM has only learnt to write
the users' questions and commands, never the answer sentences (86 % CER on the original espeak-ng
replies). The CTC head of ``pretrain_encoder.py`` spells what it hears, character by character,
in the spoken form of the corpus: English letters, tone-numbered pinyin for Mandarin
("xian4 zai4 jiu3 dian3"); it shares nothing with the LLM that generates the speech codes.

The file (``pretrain_encoder.py --asr_out FILE``) is self-contained: the encoder config, the
encoder and CTC-head weights and the alphabet (index 0 is the CTC blank).

    python recipes/mini/local/reply_asr.py --asr exp/full/reply_asr.pt --wav_dir DIR [--out FILE]

writes ``key<TAB>transcript`` per ``DIR/*.wav`` (key = file name without ``.wav``). As the
evaluation harness's reply ASR: ``--reply_asr recipes/mini/local/reply_asr.py:build:FILE``
(transcripts without tone digits; the harness writes the reply text in the same form through
``reference_form`` before it scores text-speech consistency, docs/eval.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from osum_echat.audio.features import N_FFT, log_mel_spectrogram  # noqa: E402
from osum_echat.model.config import EncoderConfig  # noqa: E402
from osum_echat.model.encoder import WhisperEncoder  # noqa: E402
from spoken_form import spoken_form  # noqa: E402

FORMAT = "mini-reply-asr-v1"
_TONE = re.compile(r"[1-5]")


def save_asr(path: str | Path, encoder: WhisperEncoder, ctc: nn.Linear, symbols: list[str]) -> None:
    """Write the ASR file; ``symbols[i]`` is the character of CTC output ``i + 1`` (0 = blank)."""
    if ctc.out_features != len(symbols) + 1:
        raise ValueError(f"CTC head has {ctc.out_features} outputs for {len(symbols)} symbols + blank")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "encoder_config": dataclasses.asdict(encoder.cfg),
                "encoder": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
                "ctc": {k: v.detach().cpu() for k, v in ctc.state_dict().items()},
                "symbols": list(symbols)}, tmp)
    tmp.replace(path)


def greedy_ctc(logits: torch.Tensor, lengths: torch.Tensor, symbols: list[str]) -> list[str]:
    """Best path of each row: logits (B, T, V) with valid lengths (B,) -> B strings (repeats
    merged, blanks dropped)."""
    best = logits.argmax(-1)
    out = []
    for b in range(best.shape[0]):
        ids = torch.unique_consecutive(best[b, : int(lengths[b])]).tolist()
        out.append("".join(symbols[i - 1] for i in ids if i != 0))
    return out


def toneless(text: str) -> str:
    """Tone digits -> word breaks ("xian4 zai4" -> "xian zai"); English text is unchanged
    (its numbers are spelled out)."""
    return " ".join(_TONE.sub(" ", text).split())


class ReplyAsr:
    """``ReplyAsr(path)(wavs) -> transcripts``: greedy CTC over 16 kHz mono waveforms (N,),
    in batches of ``batch_size`` sorted by length (the output keeps the input order)."""

    def __init__(self, path: str | Path, batch_size: int = 16, strip_tones: bool = False) -> None:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ValueError(f"{path}: not a reply ASR file (expected format {FORMAT!r}; written by "
                             f"pretrain_encoder.py --asr_out)")
        self.encoder = WhisperEncoder(EncoderConfig(**blob["encoder_config"]))
        self.encoder.load_state_dict(blob["encoder"])
        self.symbols = list(blob["symbols"])
        self.ctc = nn.Linear(self.encoder.output_dim, len(self.symbols) + 1)
        self.ctc.load_state_dict(blob["ctc"])
        self.encoder.eval()
        self.n_mels = self.encoder.cfg.input_dim
        self.batch_size, self.strip_tones = max(1, batch_size), strip_tones

    @torch.no_grad()
    def __call__(self, wavs: list[torch.Tensor]) -> list[str]:
        out = [""] * len(wavs)  # a clip shorter than one STFT window has no words
        ok = [i for i, w in enumerate(wavs) if torch.as_tensor(w).numel() >= N_FFT]
        feats = {i: log_mel_spectrogram(torch.as_tensor(wavs[i], dtype=torch.float32).reshape(-1), self.n_mels)
                 for i in ok}
        ok.sort(key=lambda i: feats[i].shape[0])
        for s in range(0, len(ok), self.batch_size):
            idx = ok[s:s + self.batch_size]
            x = nn.utils.rnn.pad_sequence([feats[i] for i in idx], batch_first=True)
            h, hl = self.encoder(x, torch.tensor([feats[i].shape[0] for i in idx]))
            for i, text in zip(idx, greedy_ctc(self.ctc(h), hl, self.symbols)):
                out[i] = toneless(text) if self.strip_tones else text
        return out

    def reference_form(self, text: str) -> str:
        """A reply text in the form the transcripts take: Chinese characters -> toneless pinyin
        syllables (the mini vocabulary's readings), the rest unchanged."""
        return spoken_form(text)


def build(path: str) -> ReplyAsr:
    """Plug-in factory of the evaluation harness (``--reply_asr reply_asr.py:build:FILE``):
    transcripts without tone digits, to be compared with :meth:`ReplyAsr.reference_form`."""
    return ReplyAsr(path, strip_tones=True)


def main(argv: list[str] | None = None) -> None:
    from osum_echat.audio.io import load_audio, resample

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--asr", required=True, help="reply ASR file (pretrain_encoder.py --asr_out)")
    p.add_argument("--wav_dir", required=True)
    p.add_argument("--out", default=None, help="key<TAB>transcript lines (default: stdout)")
    p.add_argument("--toneless", action="store_true", help="drop the pinyin tone digits")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    paths = sorted(Path(a.wav_dir).glob("*.wav"))
    if not paths:
        raise SystemExit(f"no .wav files in {a.wav_dir}")
    wavs = []
    for path in paths:
        w, sr = load_audio(path)
        wavs.append(resample(w, sr, 16000))
    texts = ReplyAsr(a.asr, strip_tones=a.toneless)(wavs)
    lines = "".join(f"{path.stem}\t{t}\n" for path, t in zip(paths, texts))
    if a.out:
        Path(a.out).write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)


if __name__ == "__main__":
    main()
