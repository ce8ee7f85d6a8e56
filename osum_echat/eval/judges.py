"""Judges: turn a rubric prompt into a score, or say that they cannot.

* ``rule``: no model; every judged field is absent (``None``), never invented.
* ``hf:FOLDER``: a local Hugging Face causal LM (transformers), greedy, batched, left padded;
  the chat template is used when the tokenizer has one.
* ``openai:URL``: an OpenAI-compatible ``/chat/completions`` endpoint; the key comes from the
  environment variable ``OSUM_JUDGE_API_KEY`` (or ``OPENAI_API_KEY``), the model name from
  ``OSUM_JUDGE_MODEL`` (default ``gpt-4o-mini``). Never used by tests.

Answers are parsed strictly (:func:`parse_score`): an unparseable answer is recorded as
``parsed: false`` and counted by the report, never scored 0.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.request
from dataclasses import dataclass
from typing import Optional, Sequence

logger = logging.getLogger(__name__)
_SCORE = re.compile(r"^\s*(?:score\s*[:：]\s*)?\**\s*([0-9]+)\s*\**\s*(?:/\s*[0-9]+)?\s*[.。]?\s*$", re.I)
_YESNO = re.compile(r"^\s*(yes|no)\s*[.。]?\s*$", re.I)


def parse_score(text: str, lo: int = 1, hi: int = 5) -> Optional[int]:
    """The integer of an answer that is only a score (``"4"``, ``"Score: 4"``, ``"**4**"``,
    ``"4/5"``) inside ``[lo, hi]``; anything else is None."""
    m = _SCORE.match(text or "")
    if not m:
        return None
    v = int(m.group(1))
    return v if lo <= v <= hi else None


def parse_yes_no(text: str) -> Optional[bool]:
    m = _YESNO.match(text or "")
    return None if not m else m.group(1).lower() == "yes"


@dataclass
class Verdict:
    raw: Optional[str]  # the judge's answer (None: no judge)
    value: Optional[float]  # parsed score / 1.0-0.0 for yes-no; None when absent or unparsed
    parsed: bool


class Judge:
    name = "rule"

    def complete(self, prompts: Sequence[str]) -> list[Optional[str]]:
        return [None] * len(prompts)

    def score(self, prompts: Sequence[str], kind: str = "1-5") -> list[Verdict]:
        """``kind``: '1-5' (a score) or 'yes-no'."""
        out = []
        for raw in self.complete(prompts):
            if raw is None:
                out.append(Verdict(None, None, False))
                continue
            if kind == "yes-no":
                v = parse_yes_no(raw)
                out.append(Verdict(raw, None if v is None else float(v), v is not None))
            else:
                s = parse_score(raw)
                out.append(Verdict(raw, None if s is None else float(s), s is not None))
        return out


class RuleJudge(Judge):
    name = "rule"


class HFJudge(Judge):
    """A local causal LM folder; greedy decoding of ``max_new_tokens`` per prompt."""

    def __init__(self, folder: str, device: str = "cpu", batch_size: int = 8, max_new_tokens: int = 8) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = f"hf:{os.path.basename(os.path.normpath(folder))}"
        self.tok = AutoTokenizer.from_pretrained(folder)
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(folder).to(device).eval()
        self.device, self.batch_size, self.max_new_tokens = device, batch_size, max_new_tokens

    def _text(self, prompt: str) -> str:
        if getattr(self.tok, "chat_template", None):
            return self.tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                add_generation_prompt=True)
        return prompt + "\n"

    def complete(self, prompts: Sequence[str]) -> list[Optional[str]]:
        import torch

        out: list[Optional[str]] = []
        for i in range(0, len(prompts), self.batch_size):
            enc = self.tok([self._text(p) for p in prompts[i:i + self.batch_size]], return_tensors="pt",
                           padding=True).to(self.device)
            with torch.no_grad():
                gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          pad_token_id=self.tok.pad_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            out += [t.strip() for t in self.tok.batch_decode(new, skip_special_tokens=True)]
        return out


class OpenAIJudge(Judge):
    """An OpenAI-compatible chat endpoint (``URL`` is the base, e.g. ``https://host/v1``)."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/") + "/chat/completions"
        self.key = os.environ.get("OSUM_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY")
        if not self.key:
            raise SystemExit("openai judge: set OSUM_JUDGE_API_KEY (or OPENAI_API_KEY)")
        self.model = os.environ.get("OSUM_JUDGE_MODEL", "gpt-4o-mini")
        self.name, self.timeout = f"openai:{self.model}", timeout

    def _one(self, prompt: str) -> Optional[str]:
        body = json.dumps({"model": self.model, "temperature": 0, "max_tokens": 16,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {self.key}"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())["choices"][0]["message"]["content"]
        except (OSError, KeyError, ValueError) as err:
            logger.warning("openai judge: request failed (%s); counted as unparsed", err)
            return ""

    def complete(self, prompts: Sequence[str]) -> list[Optional[str]]:
        return [self._one(p) for p in prompts]


def load_judge(spec: str, device: str = "cpu") -> Judge:
    """``rule`` | ``hf:FOLDER`` | ``openai:URL``."""
    if spec == "rule":
        return RuleJudge()
    if spec.startswith("hf:"):
        return HFJudge(spec[3:], device)
    if spec.startswith("openai:"):
        return OpenAIJudge(spec[7:])
    raise ValueError(f"--judge must be rule, hf:FOLDER or openai:URL, got {spec!r}")
