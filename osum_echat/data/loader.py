"""Family streams, the seeded family mixture, the IterableDataset and the resumable loader.

Determinism contract (what exact resume relies on):

* every family list is permuted per epoch with ``Random(seed, family, epoch)`` (same on all
  ranks) and split over ``slot = rank + world * worker_role`` of ``world * num_workers``
  slots (by line, or by sample when lines are fewer than slots);
* every per-sample random choice is seeded by (seed, purpose, epoch, sample uid); shuffle
  buffers by (seed, family, epoch, slot);
* the family of global step ``s`` is drawn with ``Random(seed, 'mix', s)`` among the families
  still live, with the weights of THOSE families (by name);
* a DataLoader with W workers delivers batch ``s`` from worker role ``s % W`` (PyTorch's
  in-order round robin), so a worker knows the global step of each of its batches.

State = global step + per worker role {local step, per family (epoch, batches emitted in
that epoch, done)}. On resume each family re-runs its current epoch in *light* mode (no
audio decoding, no features) for the batches already emitted, then continues normally;
worker ids are rotated by ``step % W`` so the next batch still comes from the right role.
Guaranteed: with ``on_exhaust='restart'`` (streams never end) the resumed run yields the
same batches as the uninterrupted one, for any ``num_workers`` (same W, world, seed,
config and lists). With ``'drop'``, identical until the first worker runs out entirely.
Limit: audio whose header is readable but whose samples are not is detected only when the
batch is materialised (the example is then dropped from that batch, counted).
"""

from __future__ import annotations

import copy
import gc
import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from osum_echat.data import batching, pipeline
from osum_echat.data.config import DataConfig
from osum_echat.data.drops import DropCounter, DropFile
from osum_echat.data.render import Renderer
from osum_echat.data.sources import iter_unit, read_list

logger = logging.getLogger(__name__)


class FamilyStream:
    """Batches of one family (or of all tasks, family None) for one (rank, worker role)."""

    def __init__(self, name: str, lines: list[str], cfg: DataConfig, renderer: Renderer,
                 drops: DropCounter, slot: int, num_slots: int, train: bool,
                 text_vocab_size: int) -> None:
        self.name, self.lines, self.cfg, self.renderer = name, lines, cfg, renderer
        self.drops, self.slot, self.num_slots, self.train = drops, slot, num_slots, train
        self.text_vocab_size = text_vocab_size
        part = cfg.partition
        self.by_sample = part == "sample" or (part == "auto" and len(lines) < num_slots)
        self.epoch, self.batches, self.done = 0, 0, False
        seen: dict[str, int] = {}
        self.repeat = []  # occurrence number of each line (repeated lines seed differently)
        for ln in lines:
            self.repeat.append(seen.get(ln, 0))
            seen[ln] = self.repeat[-1] + 1

    def cursor(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches": self.batches, "done": self.done}

    def _units(self, epoch: int) -> list[tuple[int, str]]:
        order = list(range(len(self.lines)))
        if self.train:
            random.Random(f"{self.cfg.seed}|list|{self.name}|{epoch}").shuffle(order)
        if not self.by_sample:
            order = order[self.slot::self.num_slots]
        return [(i, self.lines[i]) for i in order]

    def _samples(self, epoch: int):
        n = 0
        for idx, line in self._units(epoch):
            for s in iter_unit(line, str(self.repeat[idx]), self.cfg.path_prefix_map, self.drops,
                               self.cfg.data_type, self.cfg.path_root):
                keep = not self.by_sample or n % self.num_slots == self.slot
                n += 1
                if keep:
                    yield s

    def _epoch_batches(self, epoch: int, ctx: pipeline.StageContext):
        conf = self.cfg.batch
        stream = pipeline.sample_stages(self._samples(epoch), ctx)
        if self.train and conf.shuffle:
            rng = random.Random(f"{self.cfg.seed}|shuf|{self.name}|{epoch}|{self.slot}")
            stream = batching.shuffle(stream, rng, conf.shuffle_size)
        if conf.sort:
            stream = batching.sort(stream, conf.sort_size)
        return batching.batch(stream, conf)

    def batches_from(self, epoch: int, skip: int) -> Iterator[Any]:
        """Collated batches from (epoch, skip); ``restart`` continues with the next epochs."""
        self.epoch, self.batches = epoch, skip
        pack = self.cfg.batch.pack_max_tokens if self.cfg.batch.batch_type == "pack" else None
        while True:
            skip = self.batches
            ctx = pipeline.StageContext(cfg=self.cfg, renderer=self.renderer, drops=self.drops,
                                        family=None if self.name == "all" else self.name,
                                        train=self.train, light=skip > 0, epoch=self.epoch)
            emitted = 0
            for items in self._epoch_batches(self.epoch, ctx):
                emitted += 1
                if emitted <= skip:  # fast-forward on resume (light mode)
                    if emitted == skip:
                        ctx.light = False
                    continue
                self.batches = emitted
                items = [m for m in (pipeline.materialize(s, ctx) for s in items) if m is not None]
                if items:
                    yield batching.collate_samples(items, self.text_vocab_size,
                                                   self.cfg.speech_token_num, pack)
            # drop totals are logged by the main process only (this slot sees a part of them)
            logger.info("family %s slot %d: epoch %d done (%d batches)", self.name, self.slot,
                        self.epoch, emitted)
            if emitted == 0 or self.cfg.on_exhaust == "drop" or not self.train:
                if emitted == 0 and self.cfg.on_exhaust == "restart" and self.train:
                    logger.warning("family %s gives no batch on slot %d: leaving the mix",
                                   self.name, self.slot)
                self.done = True
                return
            self.epoch, self.batches = self.epoch + 1, 0


class MixtureDataset(IterableDataset):
    """Yields ``(Batch, cursor, drop_delta)``; :class:`ResumableLoader` unwraps it.
    ``drop_delta`` = ``{family: {"counts": {reason: n}, "records": [drop record, ...]}}``
    (what happened since the previous item)."""

    def __init__(self, lists: dict[str, list[str]], cfg: DataConfig, renderer: Renderer,
                 text_vocab_size: int, rank: int = 0, world_size: int = 1,
                 train: bool = True) -> None:
        super().__init__()
        self.lists, self.cfg, self.renderer = lists, cfg, renderer
        self.text_vocab_size, self.rank, self.world, self.train = text_vocab_size, rank, world_size, train
        self.weights = {f: float(cfg.mix_weights.get(f, len(lines))) for f, lines in lists.items()}
        self.resume: dict[str, Any] = {}  # role -> cursor
        self.rotation = 0

    def __iter__(self):
        info = get_worker_info()
        n_workers = info.num_workers if info else 1
        role = ((info.id if info else 0) + self.rotation) % n_workers
        if info is not None and self.cfg.pipeline_threads:
            torch.set_num_threads(self.cfg.pipeline_threads)
        drops = {fam: DropCounter(collect=True) for fam in self.lists}
        cur = self.resume.get(str(role), {})
        fam_cur = cur.get("families", {})
        slot, n_slots = self.rank + self.world * role, self.world * n_workers
        streams, iters = {}, {}
        for fam, lines in self.lists.items():
            if self.weights[fam] <= 0:  # weight 0: the family is switched off
                continue
            st = FamilyStream(fam, lines, self.cfg, self.renderer, drops[fam], slot, n_slots,
                              self.train, self.text_vocab_size)
            c = fam_cur.get(fam, {})
            streams[fam] = st
            if c.get("done"):
                st.done = True
                st.epoch, st.batches = c.get("epoch", 0), c.get("batches", 0)
            else:
                iters[fam] = st.batches_from(c.get("epoch", 0), c.get("batches", 0))
        local = int(cur.get("local_step", 0))
        while iters:
            step = local * n_workers + role
            live = [f for f in self.lists if f in iters]  # fixed order: weights follow names
            rng = random.Random(f"{self.cfg.seed}|mix|{step}")
            out = None
            while live and out is None:
                fam = rng.choices(live, weights=[self.weights[f] for f in live])[0]
                try:
                    out = next(iters[fam])
                except StopIteration:
                    del iters[fam]
                    live.remove(fam)
            if out is None:
                break
            local += 1
            cursor = {"role": role, "local_step": local,
                      "families": {f: s.cursor() for f, s in streams.items()}}
            yield (_to_wire(out) if info is not None else out), cursor, _drop_delta(drops)
        # a last message with no batch so that the final drop counts reach the main process
        yield None, {"role": role, "local_step": local,
                     "families": {f: s.cursor() for f, s in streams.items()}}, _drop_delta(drops)


def _drop_delta(drops: dict[str, DropCounter]) -> dict[str, dict[str, Any]]:
    out = {}
    for fam, d in drops.items():
        counts, records = d.delta(), d.take_records()
        if counts or records:
            out[fam] = {"counts": counts, "records": records}
    return out


def _to_wire(batch: Any) -> dict[str, Any]:
    """Batch -> dict of numpy arrays: pickled as bytes through the worker pipe, which is much
    cheaper than sending one shared-memory segment per tensor (~7 ms per batch measured)."""
    return {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in batch.__dict__.items()}


def _from_wire(data: dict[str, Any]) -> Any:
    from osum_echat.model.batch import Batch

    return Batch(**{k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v) for k, v in data.items()})


def _with_threads(it: Iterator[Any], threads: int) -> Iterator[Any]:
    """Items of ``it``, each produced with ``threads`` torch intra-op threads; the caller's
    setting is restored before each item is handed over (0: leave it as is)."""
    while True:
        outer = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            item = next(it)
        except StopIteration:
            return
        finally:
            torch.set_num_threads(outer)
        yield item


def _identity(x: Any) -> Any:
    """DataLoader collate_fn: keep the worker's output as is (numpy stays numpy)."""
    return x


def _exit_with_parent(_worker_id: int) -> None:
    """DataLoader worker init: end the worker as soon as the process that started it dies.

    PyTorch's worker notices a dead parent only while it waits for work, and at exit it joins
    its result-queue thread, which blocks forever on a full pipe that nobody reads: a training
    process killed with SIGKILL (or by the OOM killer) left its workers behind, each holding
    its memory. A daemon thread checks the parent once a second and ends the worker."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


RESULT_PIPE_BYTES = 1 << 20  # Linux's default /proc/sys/fs/pipe-max-size for any user


def _widen_result_pipe(it: Any) -> int:
    """Give the workers' result pipe 1 MB instead of 64 KB (best effort, Linux; returns the
    size now, 0 when not possible). A batch of two 11 s utterances is ~0.7 MB of features: with
    64 KB the worker's send and the main process's receive ping-pong in ~11 chunks, with 1 MB
    it is one write and one read (measured: 2 workers 10 % faster, the main process's CPU per
    batch -25 %)."""
    import fcntl

    setsz, getsz = getattr(fcntl, "F_SETPIPE_SZ", None), getattr(fcntl, "F_GETPIPE_SZ", None)
    queue = getattr(it, "_worker_result_queue", None)  # PyTorch's multiprocessing queue
    reader = getattr(queue, "_reader", None)
    if setsz is None or reader is None:
        return 0
    try:
        fd = reader.fileno()
        if fcntl.fcntl(fd, getsz) < RESULT_PIPE_BYTES:
            fcntl.fcntl(fd, setsz, RESULT_PIPE_BYTES)
        return fcntl.fcntl(fd, getsz)
    except OSError as err:  # e.g. a lower pipe-max-size: keep the default
        logger.debug("result pipe left at its default size: %s", err)
        return 0


class ResumableLoader:
    """Iterates Batches (in a DataLoader when ``num_workers`` > 0) and tracks the exact
    resume state; ``state_dict()`` / ``load_state_dict()`` round-trip through checkpoints."""

    def __init__(self, dataset: MixtureDataset, cfg: DataConfig,
                 startup_drops: dict[str, DropCounter] | None = None) -> None:
        self.dataset, self.cfg = dataset, cfg
        self.step = 0
        self.workers: dict[str, Any] = {}
        self.drops = DropCounter()  # totals by reason, all families
        self.family_drops: dict[str, DropCounter] = {}
        self.drop_file: DropFile | None = None
        self._pending: list[dict[str, Any]] = []  # drop records not yet written
        for fam, c in (startup_drops or {}).items():  # e.g. list lines that are not UTF-8
            self._absorb({fam: {"counts": c.delta(), "records": c.take_records()}})

    def write_drops_to(self, path: str | Path) -> None:
        """Append every drop record (key, origin, reason, detail, family, step) to ``path``."""
        self.drop_file = DropFile(path)
        self.drop_file.write(self._pending)
        self._pending = []

    def _absorb(self, delta: dict[str, dict[str, Any]]) -> None:
        for fam, d in delta.items():
            self.drops.merge(d["counts"])
            self.family_drops.setdefault(fam, DropCounter()).merge(d["counts"])
            records = [{**r, "family": fam, "step": self.step} for r in d["records"]]
            if self.drop_file is not None:
                self.drop_file.write(records)
            else:
                self._pending.extend(records[: max(0, 100_000 - len(self._pending))])

    def log_drops(self, where: str) -> None:
        """One line: the total by reason, then each family's total (they add up)."""
        if not self.drops.counts:
            return
        fams = "; ".join(f"{f} {c.total()} {c.as_dict()}" for f, c in sorted(self.family_drops.items())
                         if c.counts)
        logger.info("drops (%s): total %d %s; by family: %s", where, self.drops.total(),
                    self.drops.as_dict(), fams)

    @property
    def num_roles(self) -> int:
        return max(1, self.cfg.num_workers)

    def state_dict(self) -> dict[str, Any]:
        return {"version": 1, "step": self.step, "num_workers": self.cfg.num_workers,
                "rank": self.dataset.rank, "world_size": self.dataset.world,
                "seed": self.cfg.seed, "families": sorted(self.dataset.lists),
                "workers": copy.deepcopy(self.workers), "drops": self.drops.as_dict(),
                "family_drops": {f: c.as_dict() for f, c in self.family_drops.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = self.state_dict()
        for k in ("num_workers", "world_size", "seed", "families"):
            if state.get(k) != mine[k]:
                raise ValueError(f"loader state has {k}={state.get(k)!r}, this loader {mine[k]!r}: "
                                 "exact resume needs the same value")
        self.step = int(state["step"])
        self.workers = copy.deepcopy(state["workers"])
        self.drops = DropCounter()
        self.drops.merge(state.get("drops", {}))
        self.family_drops = {}
        for fam, counts in state.get("family_drops", {}).items():
            self.family_drops[fam] = DropCounter()
            self.family_drops[fam].merge(counts)

    def __iter__(self) -> Iterator[Any]:
        ds = self.dataset
        ds.resume = copy.deepcopy(self.workers)
        ds.rotation = self.step % self.num_roles
        if self.cfg.num_workers > 0:
            # the workers fork here: with the parent's objects frozen, their garbage collector
            # does not walk (and so copy-on-write) every page of the parent's Python heap
            gc.freeze()
            try:
                it = iter(DataLoader(ds, batch_size=None, collate_fn=_identity,
                                     num_workers=self.cfg.num_workers,
                                     prefetch_factor=self.cfg.prefetch_factor,
                                     pin_memory=self.cfg.pin_memory, persistent_workers=False,
                                     worker_init_fn=_exit_with_parent))
            finally:
                gc.unfreeze()
            _widen_result_pipe(it)
        else:
            it = _with_threads(iter(ds), self.cfg.pipeline_threads)
        for batch, cursor, delta in it:
            self._absorb(delta)
            if batch is None:  # end-of-worker report
                continue
            if isinstance(batch, dict):
                batch = _from_wire(batch)
            self.step += 1
            self.workers[str(cursor["role"])] = cursor
            if self.cfg.drop_log_interval and self.step % self.cfg.drop_log_interval == 0:
                self.log_drops(f"step {self.step}")
            yield batch
        self.log_drops("end of stream")


def build_renderer(cfg: DataConfig, tokenizer, think_style: str = "language",
                   text_vocab_size: int | None = None, prompt_style: str = "chatml",
                   lowercase_labels: bool = False) -> Renderer:
    """Renderer with the configured instruction files, think style and prompt style
    (``text.prompt_style`` / ``text.lowercase_labels``)."""
    from osum_echat.data.render import load_prompt_files

    return Renderer(tokenizer, think_style=think_style,
                    instructions=load_prompt_files(cfg.prompt_files),
                    text_vocab_size=text_vocab_size, speech_token_num=cfg.speech_token_num,
                    tag_think_unknown_rate=cfg.tag_think_unknown_rate,
                    num_mel_bins=cfg.num_mel_bins,
                    streaming_chunks=(cfg.streaming_text_chunk, cfg.streaming_speech_chunk),
                    prompt_style=prompt_style, lowercase_labels=lowercase_labels)


def build_loader(cfg: DataConfig, lists: dict[str, str], tokenizer, think_style: str = "language",
                 text_vocab_size: int | None = None, rank: int = 0, world_size: int = 1,
                 train: bool = True, prompt_style: str = "chatml",
                 lowercase_labels: bool = False) -> ResumableLoader:
    """The loader over family lists ``{'s2t': path, 't2s': path, ...}`` (``{'all': path}``
    = one list, no family gate). ``train=False``: one pass, no rewrites/augmentation/shuffle
    of the list order (CV / inspection)."""
    renderer = build_renderer(cfg, tokenizer, think_style, text_vocab_size, prompt_style, lowercase_labels)
    vocab = renderer.ids.text_vocab_size
    startup = {f: DropCounter(collect=True) for f in lists}
    units = {f: read_list(p, cfg.path_prefix_map, startup[f], cfg.path_root) for f, p in lists.items()}
    if not train:
        cfg = copy.deepcopy(cfg)
        cfg.on_exhaust = "drop"
        cfg.batch.shuffle = False
    ds = MixtureDataset(units, cfg, renderer, vocab, rank, world_size, train)
    return ResumableLoader(ds, cfg, startup)
