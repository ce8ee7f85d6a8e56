"""A content-addressed cache of a frozen speech encoder's outputs.

When a stage freezes the encoder (``model.trainable`` without ``encoder``) and the features
are not augmented, every pass over an utterance recomputes the same encoder frames. On CPU
that forward is about a third of a tiny-model training step. The cache keys each row by a
hash of its valid feature frames, so it stays correct whatever the batching, shuffling or
list (the same audio under ASR and tag records hits the same entry), and runs the encoder
only on the rows it has not seen. Entries live on the host, least recently used first out.

It is only correct while the encoder's weights do not change and its forward is
deterministic, so :func:`check_cacheable` refuses a trainable encoder or one with active
dropout, and :meth:`EncoderCache.encode` refuses a trainable encoder again at every call.

Stages that share one frozen encoder can share the entries too: :meth:`EncoderCache.save`
writes them with a fingerprint of the encoder's weights, and :meth:`EncoderCache.load` takes
them only into a cache whose encoder has the same fingerprint (``train.encoder_cache_file``).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn


def check_cacheable(encoder: nn.Module) -> None:
    """Raise unless the encoder's outputs depend on its input alone (frozen, no dropout)."""
    trainable = [n for n, p in encoder.named_parameters() if p.requires_grad]
    if trainable:
        raise ValueError(
            f"the encoder cache needs a frozen encoder, but {len(trainable)} encoder parameters train "
            f"(e.g. {trainable[0]}); drop 'encoder' from model.trainable or turn the cache off"
        )
    for name, mod in encoder.named_modules():
        p = mod.p if isinstance(mod, nn.Dropout) else getattr(mod, "dropout", 0.0)
        if isinstance(p, float) and p > 0.0:
            raise ValueError(
                f"the encoder cache needs a deterministic encoder, but {name or 'encoder'} has dropout {p}; "
                "set model.encoder dropouts to 0 or turn the cache off"
            )


def fingerprint(encoder: nn.Module) -> str:
    """Hex digest of the encoder's state (names, shapes, dtypes and values of weights and buffers)."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in encoder.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class EncoderCache:
    """LRU map ``hash(valid feature frames) -> encoder frames`` of at most ``max_mb`` MB."""

    def __init__(self, max_mb: float):
        if max_mb <= 0:
            raise ValueError(f"encoder cache size must be > 0 MB, got {max_mb}")
        self.max_bytes = int(max_mb * 2**20)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, torch.Tensor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(row: torch.Tensor) -> bytes:
        """Hash of one utterance's valid frames (T, F): values, shape and dtype."""
        row = row.detach().cpu().contiguous()
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{tuple(row.shape)}{row.dtype}".encode())
        h.update(row.view(torch.uint8).numpy().tobytes() if row.numel() else b"")
        return h.digest()

    def _put(self, key: bytes, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if size > self.max_bytes or key in self._entries:
            return
        while self.bytes + size > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()
        self._entries[key] = value
        self.bytes += size

    def encode(self, encoder: nn.Module, feats: torch.Tensor,
               lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``encoder(feats, lengths)`` for a frozen encoder, from the cache where possible.

        Returns hidden (N, max output length, D), zero past each row's length, and lengths.
        """
        if any(p.requires_grad for p in encoder.parameters()):
            raise ValueError("the encoder cache is on but the encoder now trains; its entries would go stale")
        n = feats.shape[0]
        lens = [int(v) for v in lengths]
        host = feats.detach().cpu()  # one copy when feats are on an accelerator
        keys = [self.key(host[i, :lens[i]]) for i in range(n)]
        rows: list[torch.Tensor | None] = []
        for k in keys:
            hit = self._entries.get(k)
            if hit is not None:
                self._entries.move_to_end(k)
            rows.append(hit)
        first_of: dict[bytes, int] = {}  # a row repeated within the batch is encoded once
        for i, k in enumerate(keys):
            if rows[i] is None and k not in first_of:
                first_of[k] = i
        missing = list(first_of.values())
        self.hits += n - len(missing)
        self.misses += len(missing)
        if missing:
            idx = torch.tensor(missing, device=feats.device)
            sub_lengths = lengths.index_select(0, idx.to(lengths.device))
            width = max(lens[i] for i in missing)
            with torch.no_grad():
                x, out_lengths = encoder(feats.index_select(0, idx)[:, :width], sub_lengths)
            for j, i in enumerate(missing):
                value = x[j, :int(out_lengths[j])].detach().to("cpu", copy=True)
                rows[i] = value
                self._put(keys[i], value)
            rows = [r if r is not None else rows[first_of[k]] for r, k in zip(rows, keys)]
        out_lengths = torch.tensor([r.shape[0] for r in rows], dtype=lengths.dtype, device=lengths.device)
        return nn.utils.rnn.pad_sequence(rows, batch_first=True).to(feats.device), out_lengths

    def save(self, path: str | Path, encoder: nn.Module) -> int:
        """Write the entries (least recently used first) and the encoder's fingerprint to
        ``path`` (through a temporary file, so a reader never sees half of one); returns how many."""
        tmp = Path(f"{path}.tmp")
        torch.save({"format": 1, "encoder": fingerprint(encoder),
                    "keys": [k.hex() for k in self._entries], "values": list(self._entries.values())}, tmp)
        os.replace(tmp, path)
        return len(self._entries)

    def load(self, path: str | Path, encoder: nn.Module) -> int:
        """Add the entries of a :meth:`save` file written for an encoder with these same weights;
        returns how many were added (as many as ``max_mb`` allows), or -1 when the file belongs
        to other weights (nothing is added: its frames would be another encoder's)."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != 1:
            raise ValueError(f"{path}: not an encoder cache file (EncoderCache.save)")
        if state["encoder"] != fingerprint(encoder):
            return -1
        before = len(self._entries)
        for k, v in zip(state["keys"], state["values"]):
            self._put(bytes.fromhex(k), v)
        return len(self._entries) - before

    def stats(self) -> dict[str, float]:
        total = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries),
                "mb": round(self.bytes / 2**20, 1), "hit_rate": round(self.hits / total, 3) if total else 0.0}
