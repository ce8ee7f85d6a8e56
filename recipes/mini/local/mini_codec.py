"""The mini recipe's speech codec: k-means codes over log-mel at 25 Hz, decoded by codebook mel +
Griffin-Lim. It needs no download and stands in for the S3 tokenizer + CosyVoice only in this
recipe (same code rate, codes 0..K-1 < 4096).

A code covers 40 ms = 4 frames of an 80-bin log-mel (16 kHz, n_fft 1024, hop 160); the
codebook holds the 4 stacked frames (320 values), so decoding restores the 100 Hz mel.

    python mini_codec.py train  --list assistant.jsonl --out codec.pt [--k 256]
    python mini_codec.py encode --codec codec.pt x.nocodes.jsonl:x.jsonl [...]
    python mini_codec.py decode --codec codec.pt --codes DIR/codes --out_dir DIR/wav
As the evaluation harness's vocoder: ``--vocoder recipes/mini/local/mini_codec.py:vocoder:codec.pt``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import zlib
from pathlib import Path

import soundfile as sf
import torch
import torchaudio

SR, N_FFT, HOP, N_MELS, STACK = 16000, 1024, 160, 80, 4


def nearest(x: torch.Tensor, cent: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid (squared L2) of each row of x: (N, D), (K, D) -> (N,)."""
    return ((cent ** 2).sum(dim=1) - 2 * x @ cent.T).argmin(dim=1)


class MiniCodec:
    def __init__(self, centroids: torch.Tensor | None = None) -> None:
        self.centroids = centroids  # (K, STACK * N_MELS) log-mel
        self.mel = torchaudio.transforms.MelSpectrogram(SR, n_fft=N_FFT, hop_length=HOP,
                                                        n_mels=N_MELS, power=1.0)

    def frames(self, wav: torch.Tensor) -> torch.Tensor:
        """(samples,) 16 kHz -> (T25, STACK*N_MELS) stacked log-mel."""
        logmel = torch.log(self.mel(wav).clamp_min(1e-4)).T  # (T100, N_MELS)
        t = logmel.shape[0] // STACK * STACK
        return logmel[:t].reshape(-1, STACK * N_MELS)

    def fit(self, vectors: torch.Tensor, k: int, iters: int = 25, seed: int = 0) -> None:
        """Plain k-means (Lloyd, random frames as the initial centroids) in torch."""
        g = torch.Generator().manual_seed(seed)
        k = min(k, vectors.shape[0])
        idx = torch.randperm(len(vectors), generator=g)[:k]  # random distinct frames
        cent = vectors[idx].clone()
        for _ in range(iters):
            assign = nearest(vectors, cent)
            sums = torch.zeros_like(cent).index_add_(0, assign, vectors)
            counts = torch.bincount(assign, minlength=k).unsqueeze(1)
            cent = torch.where(counts > 0, sums / counts.clamp_min(1), cent)
        self.centroids = cent

    def encode(self, wav: torch.Tensor) -> list[int]:
        return nearest(self.frames(wav), self.centroids).tolist()

    def decode(self, codes: list[int], n_iter: int = 32) -> torch.Tensor:
        """codes -> (samples,) 16 kHz waveform (Griffin-Lim phase)."""
        codes = [c for c in codes if 0 <= c < len(self.centroids)]
        if not codes:
            return torch.zeros(HOP)
        logmel = self.centroids[torch.tensor(codes)].reshape(-1, N_MELS).T  # (N_MELS, T100)
        if logmel.shape[1] < 8:  # too short for the STFT: pad with silence
            logmel = torch.nn.functional.pad(logmel, (0, 8 - logmel.shape[1]), value=float(torch.log(torch.tensor(1e-4))))
        inv = torchaudio.transforms.InverseMelScale(N_FFT // 2 + 1, N_MELS, SR)
        gl = torchaudio.transforms.GriffinLim(N_FFT, hop_length=HOP, power=1.0, n_iter=n_iter)
        wav = gl(inv(torch.exp(logmel)))
        return wav / wav.abs().max().clamp_min(1e-4) * 0.9

    def save(self, path: str | Path) -> None:
        torch.save({"centroids": self.centroids, "rate_hz": SR // HOP // STACK}, path)

    @classmethod
    def load(cls, path: str | Path) -> "MiniCodec":
        return cls(torch.load(path, map_location="cpu")["centroids"])


class Vocoder:
    """The codec as an evaluation vocoder (``osum_echat.bin.evaluate --vocoder
    mini_codec.py:vocoder:CODEC.pt``): codes -> (16 kHz waveform, 16000)."""

    def __init__(self, codec_path: str) -> None:
        self.codec = MiniCodec.load(codec_path)

    def synthesize(self, codes: list[int]) -> tuple[torch.Tensor, int]:
        return self.codec.decode(list(codes)), SR


def vocoder(codec_path: str) -> Vocoder:
    return Vocoder(codec_path)


_WORKER_CODEC: MiniCodec | None = None


def _worker_init(codec_path: str) -> None:
    global _WORKER_CODEC
    torch.set_num_threads(1)
    _WORKER_CODEC = MiniCodec.load(codec_path)


def _worker_decode(job: tuple[list[int], int]) -> torch.Tensor:
    codes, seed = job
    torch.manual_seed(seed)
    return _WORKER_CODEC.decode(codes)


def decode_many(codec_path: str, codes: list[list[int]], seeds: list[int], workers: int = 1) -> list[torch.Tensor]:
    """Decode each code sequence with its own Griffin-Lim phase seed, so the waveforms do not
    depend on which process decodes which sequence (only on the torch thread count's rounding).
    Griffin-Lim gains little from a second torch thread, so ``workers`` > 1 decodes in that many
    spawned single-thread processes (513 replies: 34 s with one process of two threads, 21 s
    with two processes)."""
    if len(codes) != len(seeds):
        raise ValueError(f"{len(codes)} code sequences but {len(seeds)} seeds")
    jobs = list(zip(codes, seeds))
    if workers <= 1 or len(jobs) < 2 * workers:
        codec = MiniCodec.load(codec_path)
        out = []
        with torch.random.fork_rng():  # the caller's random state stays as it was
            for c, seed in jobs:
                torch.manual_seed(seed)
                out.append(codec.decode(c))
        return out
    MiniCodec.load(codec_path)  # a bad path fails here: a Pool whose initializer fails respawns its workers forever
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init, initargs=(codec_path,)) as pool:
        return pool.map(_worker_decode, jobs, chunksize=max(1, len(jobs) // (8 * workers)))


def load_wav(path: str) -> torch.Tensor:
    wav, sr = sf.read(path, dtype="float32")
    if sr != SR:
        raise ValueError(f"{path}: {sr} Hz, expected {SR}")
    return torch.from_numpy(wav if wav.ndim == 1 else wav.mean(axis=1))


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def cmd_train(a) -> None:
    codec = MiniCodec()
    vecs = torch.cat([codec.frames(load_wav(r["wav"])) for r in read_jsonl(a.list)])
    codec.fit(vecs, a.k)
    codec.save(a.out)
    print(f"codec: {len(codec.centroids)} codes from {len(vecs)} frames -> {a.out}")


def cmd_encode(a) -> None:
    """Adds extra.speech_token (codes of extra.answer_wav) to each IN:OUT jsonl pair."""
    codec = MiniCodec.load(a.codec)
    cache: dict[str, list[int]] = {}
    for pair in a.pairs:
        inp, out = pair.split(":", 1)
        recs = read_jsonl(inp)
        for r in recs:
            path = r["extra"]["answer_wav"]
            if path not in cache:
                cache[path] = codec.encode(load_wav(path))
            r["extra"]["speech_token"] = cache[path]
        with open(out, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)


def read_codes(path: str) -> dict[str, list[int]]:
    """``key c1 c2 ...`` lines (the decode CLI's ``codes`` file; a tab or a JSON list also works)."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for ln in f:
            parts = ln.strip().split(None, 1)
            if not parts:
                continue
            rest = parts[1].strip() if len(parts) > 1 else ""
            out[parts[0]] = [int(c) for c in (json.loads(rest) if rest.startswith("[") else rest.split())]
    return out


def key_seed(key: str) -> int:
    """The Griffin-Lim phase seed of an utterance key: the same WAV whatever the order or process."""
    return zlib.crc32(key.encode("utf-8"))


def cmd_decode(a) -> None:
    threads = a.threads or max(1, int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.set_num_threads(threads)
    os.makedirs(a.out_dir, exist_ok=True)
    items = read_codes(a.codes)
    wavs = decode_many(a.codec, list(items.values()), [key_seed(k) for k in items], workers=threads)
    for key, wav in zip(items, wavs):
        sf.write(os.path.join(a.out_dir, f"{key}.wav"), wav.numpy(), SR)
    print(f"{len(items)} wavs -> {a.out_dir}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--list", required=True, help="jsonl with 'wav' fields")
    t.add_argument("--out", required=True)
    t.add_argument("--k", type=int, default=256)
    e = sub.add_parser("encode")
    e.add_argument("--codec", required=True)
    e.add_argument("pairs", nargs="+", help="IN.jsonl:OUT.jsonl")
    d = sub.add_parser("decode")
    d.add_argument("--codec", required=True)
    d.add_argument("--codes", required=True)
    d.add_argument("--out_dir", required=True)
    d.add_argument("--threads", type=int, default=0,
                   help="decoding processes (0: $OMP_NUM_THREADS); each key has its own phase seed")
    a = p.parse_args(argv)
    {"train": cmd_train, "encode": cmd_encode, "decode": cmd_decode}[a.cmd](a)


if __name__ == "__main__":
    main()
