"""The model side of an evaluation job: batch decoding of a list (the same code path as
``python -m osum_echat.bin.decode``), speech synthesis of the reply codes and transcription of
the reply audio (the loaded model's own ASR task, or openai-whisper from a local weights file).

Job ``J`` of ``N`` writes under ``OUT/gen``: the batch-decode files of its share of the list
(``split/J/{text,think,codes,ref,order}``) and ``split/J/transcripts.jsonl``; reruns skip
finished keys.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Optional, Protocol

import torch
from tqdm import tqdm

from osum_echat.eval.store import KeyedJsonl

logger = logging.getLogger(__name__)


class Vocoder(Protocol):
    def synthesize(self, codes: list[int]) -> tuple[object, int]:
        """Speech codes -> (waveform (N,), sample rate)."""


class Token2WavVocoder:
    """A CosyVoice-300M-25Hz folder through :class:`osum_echat.token2wav.model.Token2Wav`."""

    def __init__(self, folder: str, device: str = "auto") -> None:
        from osum_echat.token2wav.model import Token2Wav

        self.t2w = Token2Wav.from_pretrained(folder, device=device)

    def synthesize(self, codes: list[int]):
        return self.t2w.synthesize(codes)


def load_plugin(spec: str, option: str, expected: str = "FILE.py:FACTORY[:ARG]"):
    """``FILE.py:FACTORY[:ARG]`` -> ``FACTORY(ARG)`` (or ``FACTORY()``) from that Python file:
    the plug-in form of ``--vocoder`` and ``--reply_asr``. ``option`` and ``expected`` (the
    forms the flag takes) go into the error messages."""
    parts = spec.split(":", 2)
    if len(parts) < 2 or not parts[0].endswith(".py") or not Path(parts[0]).is_file():
        raise ValueError(f"{option} {spec!r}: expected {expected} (the file must exist)")
    mod_spec = importlib.util.spec_from_file_location(Path(parts[0]).stem + "_plugin", parts[0])
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    factory = getattr(mod, parts[1], None)
    if not callable(factory):
        raise ValueError(f"{option} {spec!r}: {parts[0]} has no callable {parts[1]!r}")
    return factory(*parts[2:])


def load_vocoder(spec: Optional[str], device: str = "auto") -> Optional[Vocoder]:
    """``None`` | ``token2wav:FOLDER`` | ``FILE.py:FACTORY[:ARG]`` (a factory returning an object
    with ``synthesize(codes) -> (wav, sr)``; the mini recipe's codec is one)."""
    if not spec:
        return None
    if spec.startswith("token2wav:"):
        return Token2WavVocoder(spec.split(":", 1)[1], device)
    voc = load_plugin(spec, "--vocoder", "token2wav:FOLDER or FILE.py:FACTORY[:ARG]")
    if not callable(getattr(voc, "synthesize", None)):
        raise ValueError(f"--vocoder {spec!r}: the factory returned {type(voc).__name__}, which has no synthesize()")
    return voc


def _as_16k(wav, sr: int) -> torch.Tensor:
    from osum_echat.audio.io import resample

    w = torch.as_tensor(wav, dtype=torch.float32).reshape(-1)
    return resample(w, sr, 16000) if sr != 16000 else w


class SelfAsr:
    """Transcribes with the loaded model's ``<TRANSCRIBE>`` task (batched)."""

    def __init__(self, bot, batch_size: int = 8) -> None:
        self.bot, self.batch_size = bot, batch_size

    def __call__(self, wavs: list[torch.Tensor]) -> list[str]:
        from osum_echat.audio.features import N_FFT, log_mel_spectrogram
        from osum_echat.data.sample import Sample

        out: list[str] = []
        n_mels = self.bot.cfg.data.num_mel_bins
        for i in range(0, len(wavs), self.batch_size):
            chunk = wavs[i:i + self.batch_size]
            ok = [j for j, w in enumerate(chunk) if w.numel() >= N_FFT]
            samples = [Sample(key=f"asr{i + j}", task="<TRANSCRIBE>", feats=log_mel_spectrogram(chunk[j], n_mels))
                       for j in ok]
            replies = self.bot.decoder.generate([self.bot.request(s) for s in samples]) if samples else []
            texts = dict(zip(ok, (r.text for r in replies)))
            out += [texts.get(j, "") for j in range(len(chunk))]
        return out


class WhisperAsr:
    """openai-whisper from a local checkpoint file (no download)."""

    def __init__(self, weights: str, device: str = "cpu") -> None:
        import whisper

        if not Path(weights).is_file():
            raise FileNotFoundError(f"whisper weights {weights} not found (a local .pt file is required)")
        self.model = whisper.load_model(weights, device=device)

    def __call__(self, wavs: list[torch.Tensor]) -> list[str]:
        return [self.model.transcribe(w.numpy(), fp16=False)["text"].strip() if w.numel() else "" for w in wavs]


def load_asr(spec: str, bot, device: str = "cpu"):
    """``self`` (default), ``whisper:FILE.pt`` or ``FILE.py:FACTORY[:ARG]``: a factory returning
    a callable ``(list of 16 kHz waveforms (N,)) -> list of transcripts``; when the object also
    has ``reference_form(text) -> text`` (an ASR that writes in another form, e.g. romanised),
    the reply texts are put in that form before consistency is scored."""
    if spec == "self":
        return SelfAsr(bot)
    if spec.startswith("whisper:"):
        return WhisperAsr(spec.split(":", 1)[1], device)
    asr = load_plugin(spec, "--reply_asr", "self, whisper:FILE.pt or FILE.py:FACTORY[:ARG]")
    if not callable(asr):
        raise ValueError(f"--reply_asr {spec!r}: the factory returned {type(asr).__name__}, which is not callable "
                         "(expected wavs -> transcripts)")
    return asr


def transcribe_replies(split_dir: Path, vocoder: Optional[Vocoder], asr, wav_dir: Optional[Path] = None,
                       batch_size: int = 8) -> int:
    """Synthesize each decoded key's codes and transcribe the audio into ``transcripts.jsonl``
    (``{"transcript": str | None, "has_audio": bool}``; None without codes or vocoder; plus
    ``"reply_form"``, the reply text in the transcripts' form, when the ASR has
    ``reference_form``)."""
    from osum_echat.audio.io import save_wav
    from osum_echat.eval.score import read_kv

    store = KeyedJsonl(split_dir / "transcripts.jsonl")
    codes_path = split_dir / "codes"
    codes = {}
    if codes_path.exists():
        for ln in codes_path.read_text(encoding="utf-8").splitlines():
            k, *c = ln.split()
            codes[k] = [int(x) for x in c]
    texts = read_kv(split_dir / "text") if (split_dir / "text").exists() else {}
    todo = [k for k in texts if k not in store.done]
    form = getattr(asr, "reference_form", None)
    n = 0
    for i in tqdm(range(0, len(todo), batch_size), desc="transcribe replies", unit="batch", leave=False):
        keys = todo[i:i + batch_size]
        wavs, have, errors = [], [], {}
        for k in keys:
            if vocoder is None or not codes.get(k):
                continue
            try:
                wav, sr = vocoder.synthesize(codes[k])
                w = _as_16k(wav, sr)
            except (RuntimeError, ValueError, IndexError) as err:  # one bad reply never stops the run
                logger.warning("%s: reply not synthesized (%s); counted as without audio", k, err)
                errors[k] = str(err)
                continue
            if wav_dir is not None:
                wav_dir.mkdir(parents=True, exist_ok=True)
                save_wav(wav_dir / f"{k}.wav", w, 16000)
            wavs.append(w)
            have.append(k)
        heard = dict(zip(have, asr(wavs) if wavs else []))
        for k in keys:
            row = {"transcript": heard.get(k), "has_audio": k in heard}
            if form is not None:
                row["reply_form"] = form(texts[k])
            if k in errors:
                row["error"] = errors[k]
            store.add(k, row)
            n += 1
    return n
