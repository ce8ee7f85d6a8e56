"""``OSUM``: the base understanding model's eight tasks through the same :class:`EChat` machinery
(config, renderer, task catalogue, decode loop); only the defaults and the task names differ.

    bot = OSUM.from_pretrained("infer.pt", tokenizer="/models/Qwen2-7B-Instruct", device="auto",
                               dtype="bf16")          # config: conf/model/osum_7b.yaml
    bot.asr("a.wav").text                 # ASR
    bot.srwt("a.wav")                     # -> (Reply, [TimedToken(token, start, end), ...])
    bot.ser("a.wav").text                 # transcript + <emotion>; likewise ved, ssr, sgc, sap
    bot.sttc("a.wav").text                # transcript <开始回答> reply
    bot.run("<TRANSCRIBE> <AGE> <GENDER>", wav="a.wav")   # any combined tag of the catalogue

The prompt is the task's instruction (``conf/prompts/osum.yaml``, or ``instruction=``), then the
speech between its markers; the answer ends at ``<|endoftext|>``. Decoding is greedy unless the
config's ``generate.understand`` policy says otherwise.
"""

from __future__ import annotations

from typing import Optional, Sequence

from osum_echat.eval.srwt import TimedToken, parse_srwt
from osum_echat.generate.echat import MODEL_CONFIGS, EChat, WavLike
from osum_echat.generate.reply import Reply

# OSUM's eight tasks: short name -> what it answers with (the task tags are in echat.TASKS).
OSUM_TASKS = {
    "asr": "transcript",
    "srwt": "transcript with per-token <start,end> times (0.1 s)",
    "ved": "transcript + <vocal event>",
    "ser": "transcript + <emotion>",
    "ssr": "transcript + <speaking style>",
    "sgc": "transcript + <gender>",
    "sap": "transcript + <age>",
    "sttc": "transcript <开始回答> reply",
}


class OSUM(EChat):
    """:class:`EChat` with OSUM's release config as the default and one method per task."""

    @classmethod
    def from_pretrained(cls, checkpoint: Optional[str], config: Optional[str] = None,
                        tokenizer: Optional[str] = None, device: str = "auto", dtype: str = "fp32",
                        token2wav_dir: Optional[str] = None, overrides: Sequence[str] = (),
                        voice=None) -> "OSUM":
        return super().from_pretrained(checkpoint, config or str(MODEL_CONFIGS["osum"]), tokenizer,
                                       device, dtype, token2wav_dir, overrides, voice)

    def srwt(self, wav: WavLike, **kw) -> tuple[Reply, list[TimedToken]]:
        """ASR with timestamps: the reply and its parsed ``(token, start, end)`` records."""
        reply = self.run("srwt", wav, **kw)
        return reply, parse_srwt(reply.text)[0]

    def ved(self, wav: WavLike, **kw) -> Reply:
        return self.run("ved", wav, **kw)

    def ser(self, wav: WavLike, **kw) -> Reply:
        return self.run("ser", wav, **kw)

    def ssr(self, wav: WavLike, **kw) -> Reply:
        return self.run("ssr", wav, **kw)

    def sgc(self, wav: WavLike, **kw) -> Reply:
        return self.run("sgc", wav, **kw)

    def sap(self, wav: WavLike, **kw) -> Reply:
        return self.run("sap", wav, **kw)

    def sttc(self, wav: WavLike, **kw) -> Reply:
        return self.run("sttc", wav, **kw)
