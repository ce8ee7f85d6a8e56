"""Logits processing for one row: constraints, penalties and sampling.

All functions take a 1-D float32 logits vector of the current phase's id space (text vocab or
speech vocab) and return a new one; none keeps hidden global state (the per-request state lives
in :class:`osum_echat.generate.decoder.RowState`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from osum_echat.generate.config import NGramBlockConfig, SamplingConfig

NEG_INF = float("-inf")

AGE_TRIGGER = "年龄为:<"  # "age is:<" inside the tag-think CoT
AGE_CHOICES = ("CHILD", "ADULT", "OLD")  # first pieces: CHILD / AD / OLD


@dataclass(frozen=True)
class AgeForcing:
    """Tag-think age slot forcing (upstream ``OSUM_chat_LogitsProcessor``).

    When the last generated text ids equal ``trigger`` (the ids of "年龄为:<"), every logit but
    those of ``allowed`` (first pieces of CHILD / ADULT / OLD) is set to -inf, once per request.
    """

    trigger: tuple[int, ...]
    allowed: tuple[int, ...]

    @classmethod
    def from_tokenizer(cls, tok) -> "AgeForcing":
        from osum_echat.text.tokenizer import encode

        trigger = tuple(encode(tok, AGE_TRIGGER))
        allowed = tuple(dict.fromkeys(encode(tok, w)[0] for w in AGE_CHOICES))
        return cls(trigger=trigger, allowed=allowed)

    def fires(self, text_ids: Sequence[int]) -> bool:
        n = len(self.trigger)
        return n > 0 and len(text_ids) >= n and tuple(text_ids[-n:]) == self.trigger

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        out = torch.full_like(logits, NEG_INF)
        idx = torch.tensor(self.allowed, device=logits.device)
        out[idx] = logits[idx]
        return out


def ngram_banned(codes: Sequence[int], cfg: NGramBlockConfig, boundary: int) -> list[int]:
    """Speech codes to ban after ``codes`` (the codes generated so far, boundaries excluded).

    * the last code, if it already ended a run of ``repeat_times`` identical codes;
    * every code occurring ``window_repeat`` times among the last ``window`` codes.
    ``cfg.special[code] = [repeat_times, window, window_repeat]`` overrides both per code.
    """
    if not codes:
        return []
    banned: set[int] = set()
    last = codes[-1]
    limit = cfg.special.get(last, [cfg.repeat_times])[0]
    run = 0
    for c in reversed(codes):
        if c != last:
            break
        run += 1
    if run >= limit:
        banned.add(last)
    longest = max([cfg.window] + [v[1] for v in cfg.special.values()])
    recent = list(codes[-longest:])
    for c in set(recent):
        rep, win, win_rep = cfg.special.get(c, [cfg.repeat_times, cfg.window, cfg.window_repeat])
        if recent[-win:].count(c) >= win_rep:
            banned.add(c)
    banned.discard(boundary)
    return sorted(banned)


def ban(logits: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
    if not ids:
        return logits
    out = logits.clone()
    out[torch.tensor(list(ids), device=logits.device)] = NEG_INF
    return out


def only(logits: torch.Tensor, token: int) -> torch.Tensor:
    """Force ``token`` (all other logits -inf)."""
    out = torch.full_like(logits, NEG_INF)
    out[token] = logits[token] if torch.isfinite(logits[token]) else 0.0
    return out


def repetition_penalty(logits: torch.Tensor, seen: Sequence[int], penalty: float) -> torch.Tensor:
    """HF semantics: logits of seen ids are divided by ``penalty`` if > 0, else multiplied."""
    if penalty == 1.0 or not seen:
        return logits
    idx = torch.tensor(sorted(set(seen)), device=logits.device)
    vals = logits[idx]
    out = logits.clone()
    out[idx] = torch.where(vals > 0, vals / penalty, vals * penalty)
    return out


def choose(logits: torch.Tensor, policy: SamplingConfig, gen: Optional[torch.Generator]) -> int:
    """Greedy argmax or temperature -> top-k -> top-p -> multinomial (upstream order)."""
    if policy.greedy:
        return int(torch.argmax(logits))
    x = logits / policy.temperature
    if policy.top_k and policy.top_k < x.numel():
        kth = torch.topk(x, policy.top_k).values[-1]
        x = x.masked_fill(x < kth, NEG_INF)
    if policy.top_p < 1.0:
        sorted_x, order = torch.sort(x, descending=False)
        cum = torch.softmax(sorted_x, dim=-1).cumsum(-1)
        remove = cum <= (1.0 - policy.top_p)
        remove[-1] = False  # keep at least the best token
        x = x.masked_fill(torch.zeros_like(remove).scatter(0, order, remove), NEG_INF)
    probs = torch.softmax(x, dim=-1)
    return int(torch.multinomial(probs.cpu(), 1, generator=gen))
