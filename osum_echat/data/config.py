"""Data pipeline configuration (the ``data:`` section).

Lengths are in the units named by the key: ``*_frames`` are 10 ms log-mel frames,
``*_tokens`` are LLM positions as counted by ``osum_echat.model.batch.example_length``
(speech input counted after the encoder/adapter downsampling, markers included).
This module imports nothing from ``osum_echat.config`` (that would be circular).
"""

from __future__ import annotations

from dataclasses import dataclass, field

FAMILIES = ("s2t", "t2s", "s2s", "t2t")


@dataclass
class FilterConfig:
    """Which examples are kept. Every drop is counted by reason (``DropCounter``)."""

    min_frames: int = 20  # 0.2 s of user speech (current turn)
    max_frames: int = 20000  # 200 s
    min_label_tokens: int = 1  # supervised text tokens, eos excluded
    max_label_tokens: int = 1200
    max_speech_codes: int = 3000  # answer speech codes (120 s at 25 Hz)
    max_seq_len: int = 2000  # whole example in LLM positions; 0 = no limit
    # Speech tasks: drop when ratio * text_ids >= speech_ids (upstream used 0.8).
    min_speech_text_ratio: float = 0.8
    # Answer texts containing any of these substrings are dropped ('banned_text').
    banned_substrings: list[str] = field(default_factory=list)


@dataclass
class AugmentConfig:
    """Training-time augmentation (off for CV / inference)."""

    speed_perturb: bool = False
    speeds: list[float] = field(default_factory=lambda: [0.9, 1.0, 1.1])
    spec_aug: bool = True
    num_t_mask: int = 2
    max_t: int = 50
    num_f_mask: int = 2
    max_f: int = 10
    spec_sub: bool = True
    max_t_sub: int = 30
    num_t_sub: int = 3


@dataclass
class BatchConfig:
    """How examples become batches (each bucket holds one output type or family)."""

    batch_type: str = "dynamic"  # static | dynamic | pack
    batch_size: int = 8  # static: examples per batch; dynamic/pack: upper bound (0 = none)
    # dynamic: rows * longest example <= max_tokens_in_batch; pack: sum of lengths <= it
    max_tokens_in_batch: int = 4000
    pack_max_tokens: int = 2048  # pack: row width (each example must fit: see max_seq_len)
    bucket_by: str = "output_type"  # output_type | family
    # Per-bucket multiplier of max_tokens_in_batch (e.g. {"speech2text_token": 0.8}).
    bucket_scale: dict[str, float] = field(default_factory=dict)
    shuffle: bool = True
    shuffle_size: int = 1500
    sort: bool = True
    sort_size: int = 500


@dataclass
class DataConfig:
    sample_rate: int = 16000
    num_mel_bins: int = 80
    speech_token_num: int = 4097  # codes 0..4095 + boundary 4096; input markers 4097/4098
    # 'auto' detects raw jsonl lists (lines starting with '{') vs lists of tars / META|TAR.
    data_type: str = "auto"  # auto | raw | shard
    # Rewrite path prefixes in lists, metadata and raw 'wav' fields (first match wins).
    path_prefix_map: dict[str, str] = field(default_factory=dict)
    # Folder that relative wav / tar / jsonl / metadata paths are joined to ('' = the working
    # directory, as in WeNet). Applied after path_prefix_map; never to the list file itself.
    path_root: str = ""
    default_task: str = "<TRANSCRIBE>"  # task when a record has none; '' = drop ('missing_field')
    unknown_task: str = "drop"  # drop | understand (treat as an understanding task, no prompt)
    prompt_files: list[str] = field(default_factory=lambda: ["conf/prompts/understanding.yaml"])
    # Upstream 'use_50_per_change_if_only_X': turn '<TRANSCRIBE> <X>' into '<X>' (label = tag)
    # and '<TRANSCRIBE> <S2TCHAT>' into '<S2TCHAT>' with this probability.
    only_x_rate: float = 0.0
    streaming_tts_rate: float = 0.0  # '<TEXT2TOKEN>' -> '<TEXT2TOKEN> <STREAMING>'
    tag_think_unknown_rate: float = 0.85  # tag think: missing attributes become '<&&>'
    streaming_text_chunk: int = 6
    streaming_speech_chunk: int = 18
    filter: FilterConfig = field(default_factory=FilterConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    # Family mixture: weight per family; a family missing here is weighted by its list length.
    mix_weights: dict[str, float] = field(default_factory=dict)
    on_exhaust: str = "restart"  # restart (infinite stream) | drop (one pass, then leave the mix)
    # Partition of list lines over rank x worker: 'line', 'sample' (every worker reads every
    # line and keeps 1/N of the samples) or 'auto' ('sample' when lines < ranks x workers).
    partition: str = "auto"
    seed: int = 777
    num_workers: int = 0
    # torch intra-op threads while the pipeline runs (in each worker, or around each batch in
    # the main process; restored before the batch is handed over). Its ops are small (one
    # utterance's STFT ~0.6 ms): a second thread gains little on an idle machine and, on a busy
    # one, every op waits for a descheduled thread (x100 slower measured). 0 = leave as is.
    pipeline_threads: int = 1
    # The loader yields 16 kHz waveforms and the model computes log-mel (and applies the
    # loader's SpecAugment/SpecSub plans) on its device in one batched call per batch
    # (``Batch.featurize``): the largest per-utterance cost leaves the loader. For accelerators;
    # on the CPU it only moves the work. Features equal the loader's within 1e-4.
    features_on_device: bool = False
    prefetch_factor: int = 4
    pin_memory: bool = False
    drop_log_interval: int = 1000  # batches between drop-statistics log lines

    def validate(self) -> None:
        checks = [
            (self.data_type in ("auto", "raw", "shard"), f"data_type {self.data_type!r}"),
            (self.unknown_task in ("drop", "understand"), f"unknown_task {self.unknown_task!r}"),
            (self.on_exhaust in ("restart", "drop"), f"on_exhaust {self.on_exhaust!r}"),
            (self.partition in ("auto", "line", "sample"), f"partition {self.partition!r}"),
            (self.batch.batch_type in ("static", "dynamic", "pack"),
             f"batch.batch_type {self.batch.batch_type!r}"),
            (self.batch.bucket_by in ("output_type", "family"), f"batch.bucket_by {self.batch.bucket_by!r}"),
            (all(k in FAMILIES for k in self.mix_weights), f"mix_weights keys must be in {FAMILIES}"),
            (all(w >= 0 for w in self.mix_weights.values()), "mix_weights must be >= 0"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (self.pipeline_threads >= 0, "pipeline_threads must be >= 0"),
            (0.0 <= self.only_x_rate <= 1.0, "only_x_rate must be in [0, 1]"),
        ]
        for ok, what in checks:
            if not ok:
                raise ValueError(f"invalid {what}")
        if (self.batch.batch_type == "pack" and self.filter.max_seq_len
                and self.filter.max_seq_len > self.batch.pack_max_tokens):
            raise ValueError("filter.max_seq_len must be <= batch.pack_max_tokens when packing")
