"""Pre-train the mini model's speech encoder with CTC and save a full initial checkpoint.

    python recipes/mini/local/pretrain_encoder.py --config CONF --utts data/train/utts.jsonl \
        --dev data/dev/utts.jsonl --out exp/encoder_init.pt [--steps 900] [overrides...]

The release starts stage 1 from a pretrained Whisper encoder and a pretrained Qwen LLM; the mini
recipe has no download, so it makes its own "pretrained Whisper": the library's encoder
(``model.encoder``, same shape as in the stage configs) plus throw-away linear heads, trained
with CTC on the characters of what espeak-ng spoke (English letters, tone-numbered pinyin) and
cross-entropy of gender, age group and emotion style from the mean-pooled encoder output (like
the release encoder, trained on ASR and paralinguistic tasks).
The encoder then gives phonetic features, and stage 1 only has to teach the adapter and the LLM
to read them (without it, ~1,000 updates of a randomly initialised encoder + LLM learn the
label prior and nothing of the audio). Everything but the encoder keeps its random init.

The reply ASR (``--asr_out FILE``, read by ``reply_asr.py``): the encoder with its CTC head,
trained also on the replies in the assistant voice (``--assistant assistant.jsonl``; CTC only,
they have no speaker attributes) and, with ``--codec codec.pt``, on ``--roundtrip_copies``
passes of each through the mini speech codec (encode + decode), so that it reads the vocoded
replies of the trained model (``--roundtrip_pool P``: P passes decoded, ``--roundtrip_copies`` of
them trained in each epoch, in turn). With ``--asr_steps N`` (the recipe's choice) the encoder's own
steps see no replies (the checkpoint is the one a run without them writes) and a copy of encoder
+ heads trains N more steps on users + replies; with N = 0 the replies are mixed into the
encoder's own steps and the ASR is the encoder itself (500 steps: dev CER 19.0 % instead of
15.2 %, and a reply ASR that misreads ~44 % of the vocoded reference replies; README).

Prints the dev (unseen voices) greedy-CTC character error rate and the attribute accuracies every
--eval_every steps, and at the end the CER on the assistant items (original and codec round trip;
training items unless ``--assistant_holdout K`` keeps every K-th one out).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from osum_echat.audio.features import features_from_wav  # noqa: E402
from osum_echat.config import load_config  # noqa: E402
from osum_echat.eval.wer import align  # noqa: E402
from osum_echat.model.build import build_model  # noqa: E402
from osum_echat.model.encoder import lengths_to_mask  # noqa: E402
from osum_echat.model.checkpoint import save_checkpoint  # noqa: E402
from reply_asr import greedy_ctc, save_asr  # noqa: E402


ATTRIBUTES = {"gender": ["male", "female"], "age": ["child", "adult", "old"],
              "emotion": ["happy", "sad", "neutral"]}
NO_ATTR = -100  # attribute id of the assistant items (cross-entropy ignore index)


def read_utts(path: str, n_mels: int, alphabet: dict[str, int] | None, attributes: bool = True):
    """[(feats (T, n_mels), characters, attribute ids, wav path)] of a utts.jsonl (or, with
    ``attributes`` False, of the assistant.jsonl: ids NO_ATTR); the alphabet grows when one is
    given."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            u = json.loads(line)
            if not isinstance(u.get("spoken"), str) or not u["spoken"]:
                raise ValueError(f"{path}:{n} ({u.get('key')}): no 'spoken' text (regenerate the corpus)")
            chars = list(u["spoken"])
            if alphabet is not None:
                for c in chars:
                    alphabet.setdefault(c, len(alphabet) + 1)  # 0 = blank
            if attributes:
                bad = {k: u.get(k) for k, vals in ATTRIBUTES.items() if u.get(k) not in vals}
                if bad:
                    raise ValueError(f"{path}:{n} ({u.get('key')}): unknown attribute values {bad}; "
                                     f"expected {ATTRIBUTES}")
                attrs = [vals.index(u[name]) for name, vals in ATTRIBUTES.items()]
            else:
                attrs = [NO_ATTR] * len(ATTRIBUTES)
            out.append((features_from_wav(u["wav"], n_mels), chars, attrs, u["wav"]))
    return out


def round_trip(items: list, codec_path: str, n_mels: int, copies: int, seed: int = 0, workers: int = 1) -> list:
    """``copies`` codec round trips (encode, decode: codebook mel + Griffin-Lim from a random
    phase, so copies differ) of each item's wav, as new items with the same text. Each decode has
    its own phase seed (from ``seed``; ``workers`` decoding processes), and the model's
    initialisation is left as it was."""
    from mini_codec import MiniCodec, decode_many, load_wav

    codec = MiniCodec.load(codec_path)
    codes = [codec.encode(load_wav(wav)) for _, _, _, wav in items]
    jobs = [(i, c) for i, c in enumerate(codes) for _ in range(copies)]
    wavs = decode_many(codec_path, [c for _, c in jobs], [seed * 1_000_003 + k for k in range(len(jobs))], workers)
    return [(features_from_wav(w, n_mels), *items[i][1:]) for (i, _), w in zip(jobs, wavs)]


class EpochItems:
    """The training items of each epoch: ``fixed`` ones (every epoch) and, for each reply, ``per_epoch``
    of its ``pool`` codec round trips (``rotating``: ``pool`` consecutive copies per reply), taken
    in turn (epoch e: copies e * per_epoch, ... modulo pool). The replies keep the share of
    ``per_epoch`` copies in every batch mixture while the encoder meets all ``pool`` phases over
    the epochs. ``pool == per_epoch`` is a plain list: every epoch the same items, in order."""

    def __init__(self, fixed: list, rotating: list = (), pool: int = 1, per_epoch: int = 1) -> None:
        if len(rotating) and (not 1 <= per_epoch <= pool or len(rotating) % pool):
            raise ValueError(f"{len(rotating)} round trips, {pool} per reply, {per_epoch} per epoch")
        self.fixed, self.per_epoch, self.pool = list(fixed), per_epoch, pool
        self.groups = [list(rotating[i:i + pool]) for i in range(0, len(rotating), pool)]

    def __len__(self) -> int:
        return len(self.fixed) + self.per_epoch * len(self.groups)

    def epoch(self, e: int) -> list:
        picks = [(e * self.per_epoch + j) % self.pool for j in range(self.per_epoch)]
        return self.fixed + [g[k] for g in self.groups for k in picks]


def batches(data: list, max_frames: int, rng: random.Random):
    """Length-sorted buckets of at most max_frames padded frames, in random order."""
    order = sorted(range(len(data)), key=lambda i: data[i][0].shape[0] + rng.random())
    out, cur, longest = [], [], 0
    for i in order:
        t = data[i][0].shape[0]
        if cur and max(longest, t) * (len(cur) + 1) > max_frames:
            out.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, t)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def collate(data: list, idx: list[int]):
    """Padded features (B, T, n_mels), lengths (B,), attribute ids (B, 3)."""
    feats = [data[i][0] for i in idx]
    x = nn.utils.rnn.pad_sequence(feats, batch_first=True)
    return x, torch.tensor([f.shape[0] for f in feats]), torch.tensor([data[i][2] for i in idx])


def ctc_targets(data: list, idx: list[int], alphabet: dict[str, int]):
    """Concatenated CTC targets and their lengths (training utterances: every symbol known)."""
    tgt = [torch.tensor([alphabet[c] for c in data[i][1]]) for i in idx]
    return torch.cat(tgt), torch.tensor([len(t) for t in tgt])


class Heads(nn.Module):
    """CTC projection per frame + one classifier per attribute on the masked mean."""

    def __init__(self, dim: int, num_symbols: int):
        super().__init__()
        self.ctc = nn.Linear(dim, num_symbols + 1)
        self.attrs = nn.ModuleList(nn.Linear(dim, len(v)) for v in ATTRIBUTES.values())

    def forward(self, h: torch.Tensor, lengths: torch.Tensor):
        mask = lengths_to_mask(lengths, h.shape[1]).to(h.dtype)
        pooled = (h * mask[..., None]).sum(1) / lengths[:, None].to(h.dtype)
        return self.ctc(h), [head(pooled) for head in self.attrs]


def attribute_loss(attr_logits: list[torch.Tensor], attrs: torch.Tensor) -> torch.Tensor:
    """Sum over attributes of the cross-entropy on the items that have attributes (B, 3)."""
    valid = attrs[:, 0] != NO_ATTR
    if not bool(valid.any()):
        return attr_logits[0].sum() * 0.0
    return sum(nn.functional.cross_entropy(al[valid], attrs[valid, k]) for k, al in enumerate(attr_logits))


def evaluate(encoder: nn.Module, heads: Heads, data: list, alphabet: dict[str, int]) -> str:
    """Greedy-CTC CER and attribute accuracies (of the items that have them), as one line."""
    symbols = sorted(alphabet, key=alphabet.get)
    errs = total = 0
    right = torch.zeros(len(ATTRIBUTES))
    n_attr = sum(1 for d in data if d[2][0] != NO_ATTR)
    encoder.eval()
    with torch.no_grad():
        for start in range(0, len(data), 32):
            idx = list(range(start, min(start + 32, len(data))))
            x, lens, attrs = collate(data, idx)
            h, hl = encoder(x, lens)
            logits, attr_logits = heads(h, hl)
            right += torch.stack([(a.argmax(-1) == attrs[:, k]).sum() for k, a in enumerate(attr_logits)])
            for i, hyp in zip(idx, greedy_ctc(logits, hl, symbols)):
                c = align(data[i][1], list(hyp))
                errs, total = errs + c.errors, total + c.ref
    encoder.train()
    line = f"CER {100 * errs / max(total, 1):.1f} %"
    if n_attr:
        line += ", " + ", ".join(f"{name} {100 * r / n_attr:.1f} %" for name, r in zip(ATTRIBUTES, right.tolist()))
    return line


def assistant_sets(a, n_mels: int, alphabet: dict[str, int]) -> dict[str, list]:
    """The assistant items: {"train orig", "train round trip"} (trained and scored) and, with
    --assistant_holdout K, {"held-out orig", "held-out round trip"} (every K-th: scored only)."""
    if not a.assistant:
        return {}
    items = read_utts(a.assistant, n_mels, alphabet, attributes=False)
    k = a.assistant_holdout
    held = [it for i, it in enumerate(items) if k and i % k == 0]
    sets = {"train orig": [it for i, it in enumerate(items) if not (k and i % k == 0)], "held-out orig": held}
    if a.codec:
        workers = max(1, a.threads)  # decoding processes (Griffin-Lim gains little from torch threads)
        sets["train round trip"] = round_trip(sets["train orig"], a.codec, n_mels, pool_size(a), a.seed, workers)
        sets["held-out round trip"] = round_trip(held, a.codec, n_mels, 1, a.seed + 1, workers)
    return {k: v for k, v in sets.items() if v}


def pool_size(a) -> int:
    """Round trips decoded per reply: ``--roundtrip_pool`` (0: ``--roundtrip_copies``)."""
    return max(a.roundtrip_pool, a.roundtrip_copies)


def training_items(users: list, replies: dict[str, list], a) -> EpochItems:
    """Users and original replies every epoch, ``--roundtrip_copies`` of each reply's round trips
    per epoch (in turn from its pool)."""
    return EpochItems(users + replies.get("train orig", []), replies.get("train round trip", []),
                      pool_size(a), a.roundtrip_copies)


def extra_items(users: list, replies: dict[str, list], a, n_mels: int) -> EpochItems:
    """The reply ASR's own steps: every ``--asr_extra_user_every``-th user, the original replies and
    ``--asr_extra_fresh`` new round trips of each (phase seeds of their own), all of them every epoch;
    without fresh ones the reply phase's round trips as they were drawn there."""
    kept = users[::a.asr_extra_user_every]
    if not a.asr_extra_fresh:
        return training_items(kept, replies, a)
    orig = replies.get("train orig", [])
    fresh = round_trip(orig, a.codec, n_mels, a.asr_extra_fresh, a.seed + 2, max(1, a.threads))
    return EpochItems(kept + orig, fresh, a.asr_extra_fresh, a.asr_extra_fresh)


def train_ctc(encoder: nn.Module, heads: Heads, items: EpochItems, alphabet: dict[str, int], steps: int, lr: float,
              warmup: int, a, rng: random.Random, dev: list, tag: str) -> None:
    """``steps`` AdamW updates (linear warm-up, cosine decay to 5 %) of CTC + attribute losses on
    length-bucketed batches of each epoch's ``items``; prints the dev line every ``a.eval_every`` steps."""
    params = list(encoder.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warmup, 1.0) * (
        0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0)))))
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    encoder.train()
    step, epoch, t0, run = 0, 0, time.time(), 0.0
    while step < steps:
        data = items.epoch(epoch)
        epoch += 1
        for idx in batches(data, a.max_frames, rng):
            x, lens, attrs = collate(data, idx)
            tgt, tlens = ctc_targets(data, idx, alphabet)
            h, hl = encoder(x, lens)
            logits, attr_logits = heads(h, hl)
            loss = ctc(logits.log_softmax(-1).transpose(0, 1), tgt, hl, tlens)  # (T, B, V)
            loss = loss + a.attr_weight * attribute_loss(attr_logits, attrs)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            step += 1
            run = loss.item() if step == 1 else 0.9 * run + 0.1 * loss.item()
            if step % a.eval_every == 0 or step == steps:
                print(f"[{tag}] step {step}/{steps} loss {run:.3f} dev "
                      f"{evaluate(encoder, heads, dev, alphabet)} ({time.time() - t0:.0f} s)", flush=True)
            if step >= steps:
                break


def grown(heads: Heads, num_symbols: int) -> Heads:
    """A copy of the heads whose CTC layer has outputs for ``num_symbols`` (new symbols: fresh rows)."""
    out = copy.deepcopy(heads)
    old = heads.ctc.out_features
    if num_symbols + 1 > old:
        out.ctc = nn.Linear(heads.ctc.in_features, num_symbols + 1)
        with torch.no_grad():
            out.ctc.weight[:old] = heads.ctc.weight
            out.ctc.bias[:old] = heads.ctc.bias
    return out


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="a stage config (gives the model shape)")
    p.add_argument("--utts", required=True, help="train utts.jsonl (wav, spoken)")
    p.add_argument("--dev", required=True, help="dev utts.jsonl (unseen voices)")
    p.add_argument("--out", required=True, help="full model checkpoint to write")
    p.add_argument("--steps", type=int, default=900, help="CTC steps (the recipe's full run: 900)")
    # half the former 12,000 frames: twice the updates over the same frames for ~10 % more time,
    # and the CTC curve leaves its blank plateau sooner (dev CER after 900 half batches against
    # 450 full ones: 16.1 against 24.7 % with the default seed, 17.7 against 48.7 % with seed 2;
    # recipes/mini/README.md, round 4)
    p.add_argument("--max_frames", type=int, default=6000, help="padded log-mel frames per batch")
    # 500 steps, dev CER: 2e-3 26.1 %, 4e-3 20.0 %, 6e-3 15.1 %, 1e-2 16.9 % (recipes/mini/README.md)
    p.add_argument("--lr", type=float, default=6e-3)
    p.add_argument("--warmup", type=int, default=60)
    p.add_argument("--attr_weight", type=float, default=0.3, help="weight of each attribute loss")
    p.add_argument("--eval_every", type=int, default=100)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--assistant", default=None, help="assistant.jsonl (wav, spoken): replies trained with CTC")
    p.add_argument("--codec", default=None, help="mini codec .pt: also train codec round trips of the replies")
    p.add_argument("--roundtrip_copies", type=int, default=1, help="round-trip copies per reply in each epoch")
    p.add_argument("--roundtrip_pool", type=int, default=0,
                   help="P > --roundtrip_copies: decode P round trips per reply; each epoch trains "
                        "--roundtrip_copies of them, in turn (the replies' share stays, the phases vary)")
    p.add_argument("--assistant_holdout", type=int, default=0,
                   help="K > 0: every K-th reply is not trained, only scored (a measurement of reading)")
    p.add_argument("--asr_steps", type=int, default=0,
                   help="N > 0: the replies are not mixed into the encoder's steps; a copy of the encoder + "
                        "CTC head trains N more steps on users + replies and becomes the reply ASR")
    p.add_argument("--asr_lr", type=float, default=3e-3, help="peak learning rate of the --asr_steps")
    p.add_argument("--asr_out", default=None, help="write the encoder + CTC head as the reply ASR (reply_asr.py)")
    p.add_argument("--asr_extra_steps", type=int, default=0,
                   help="with --shared_asr: a copy of the encoder trains N more steps on users + replies "
                        "(at half the --asr_lr) for the reply ASR only")
    # The reply ASR's ceiling (reference codes through the codec, read by it) was 14-18 % after the
    # shared phase: it had learnt the phases of its own 3 round trips. 150 more steps of a copy on
    # 3 new round trips per reply and a third of the users: 7-9 % (recipes/mini/README.md, item 47)
    p.add_argument("--asr_extra_fresh", type=int, default=0,
                   help="K > 0: the --asr_extra_steps train on K new codec round trips per reply (phases "
                        "not seen before) instead of the reply phase's")
    p.add_argument("--asr_extra_user_every", type=int, default=1,
                   help="M > 1: the --asr_extra_steps keep every M-th user utterance (more reply updates per step)")
    p.add_argument("--shared_asr", action="store_true",
                   help="the --asr_steps train the model's encoder itself (no copy): --out is written after "
                        "both phases and the reply ASR is that encoder + its CTC head (the recipe's choice: "
                        "the model gets the longer-trained encoder for no extra time)")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    if (a.codec or a.asr_steps) and not a.assistant:
        raise SystemExit("--codec and --asr_steps need --assistant (the replies to train)")
    if a.roundtrip_pool and not a.codec:
        raise SystemExit("--roundtrip_pool needs --codec (the round trips to pool)")
    if a.asr_extra_steps and not (a.shared_asr and a.asr_steps):
        raise SystemExit("--asr_extra_steps continues a --shared_asr run: give --shared_asr and --asr_steps N")
    if (a.asr_extra_fresh or a.asr_extra_user_every != 1) and not a.asr_extra_steps:
        raise SystemExit("--asr_extra_fresh / --asr_extra_user_every shape the --asr_extra_steps: give --asr_extra_steps N")
    if a.asr_extra_fresh and not a.codec:
        raise SystemExit("--asr_extra_fresh needs --codec (the round trips to decode)")
    if a.asr_extra_fresh < 0 or a.asr_extra_user_every < 1:
        raise SystemExit("--asr_extra_fresh must be >= 0 and --asr_extra_user_every >= 1")
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    cfg = load_config(a.config, a.overrides)
    model = build_model(cfg.model, apply_trainable=False)  # the stage may freeze the encoder
    encoder, n_mels = model.encoder, cfg.model.encoder.input_dim
    alphabet: dict[str, int] = {}
    t0 = time.time()
    users = read_utts(a.utts, n_mels, alphabet)
    dev = read_utts(a.dev, n_mels, None)
    # mixed into the encoder's own steps, or (--asr_steps) only into the reply ASR's extra steps
    replies = assistant_sets(a, n_mels, alphabet) if not a.asr_steps else {}
    train = training_items(users, replies, a)
    print(f"[ctc] {len(train)} train ({len(train) - len(users)} assistant) / {len(dev)} dev utterances, "
          f"{len(alphabet)} symbols, features in {time.time() - t0:.1f} s", flush=True)
    heads = Heads(encoder.output_dim, len(alphabet))
    train_ctc(encoder, heads, train, alphabet, a.steps, a.lr, a.warmup, a, rng, dev, "ctc")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    if not a.shared_asr:
        save_checkpoint(model, a.out, {"tag": "ctc-pretrained encoder", "steps": a.steps})
        print(f"[ctc] wrote {a.out}")
    asr_encoder, asr_heads = encoder, heads
    if a.asr_steps:
        replies = assistant_sets(a, n_mels, alphabet)
        train = training_items(users, replies, a)
        asr_heads = grown(heads, len(alphabet))
        asr_encoder = encoder if a.shared_asr else copy.deepcopy(encoder)
        print(f"[asr] {len(train)} train ({len(train) - len(users)} assistant), {len(alphabet)} symbols", flush=True)
        train_ctc(asr_encoder, asr_heads, train, alphabet, a.asr_steps, a.asr_lr, max(1, a.asr_steps // 10),
                  a, rng, dev, "asr")
    if a.shared_asr:  # the model's encoder is the one after both phases
        save_checkpoint(model, a.out, {"tag": "ctc-pretrained encoder", "steps": a.steps + a.asr_steps})
        print(f"[ctc] wrote {a.out} ({a.steps} + {a.asr_steps} steps)")
        if a.asr_extra_steps:  # the reply ASR alone reads on: a copy, the model's encoder stays
            asr_encoder = copy.deepcopy(encoder)
            extra = extra_items(users, replies, a, n_mels)
            print(f"[asr+] {len(extra)} train ({len(extra) - len(users[::a.asr_extra_user_every])} assistant)",
                  flush=True)
            train_ctc(asr_encoder, asr_heads, extra, alphabet, a.asr_extra_steps, a.asr_lr / 2,
                      max(1, a.asr_extra_steps // 10), a, rng, dev, "asr+")
    for name, items in replies.items():
        print(f"[asr] assistant replies, {name} ({len(items)}): {evaluate(asr_encoder, asr_heads, items, alphabet)}",
              flush=True)
    if a.asr_out:
        save_asr(a.asr_out, asr_encoder, asr_heads.ctc, sorted(alphabet, key=alphabet.get))
        print(f"[asr] wrote the reply ASR {a.asr_out}")


if __name__ == "__main__":
    main()
