"""``--reply_asr FILE.py:FACTORY[:ARG]``: the evaluation harness loads a reply ASR from a Python
file, like a ``--vocoder`` plug-in, and scores consistency in the ASR's own written form."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import eval_helpers as H  # noqa: E402

from osum_echat.eval.generation import load_asr, load_vocoder  # noqa: E402

ASR_PY = '''
class Asr:
    def __init__(self, word):
        self.word = word

    def __call__(self, wavs):
        return [self.word for _ in wavs]

    def reference_form(self, text):
        return self.word if text.strip() else ""


def make(word="spoken words"):
    return Asr(word)


def not_an_asr():
    return 42
'''


@pytest.fixture
def plugin(tmp_path) -> Path:
    path = tmp_path / "my_asr.py"
    path.write_text(ASR_PY)
    return path


def test_plugin_spec_loads_the_factory_with_its_argument(plugin):
    asr = load_asr(f"{plugin}:make:hello there", bot=None)
    assert asr([torch.zeros(10), torch.zeros(20)]) == ["hello there", "hello there"]
    assert load_asr(f"{plugin}:make", bot=None)([torch.zeros(3)]) == ["spoken words"]


def test_bad_plugin_specs_say_what_is_wrong(plugin, tmp_path):
    with pytest.raises(ValueError, match=r"--reply_asr 'nope.py:make': expected self, whisper:FILE.pt or "
                                         r"FILE.py:FACTORY\[:ARG\] \(the file must exist\)"):
        load_asr("nope.py:make", bot=None)
    with pytest.raises(ValueError, match="--reply_asr 'bogus': expected self"):
        load_asr("bogus", bot=None)
    with pytest.raises(ValueError, match=r"my_asr.py has no callable 'missing'"):
        load_asr(f"{plugin}:missing", bot=None)
    with pytest.raises(ValueError, match="returned int, which is not callable"):
        load_asr(f"{plugin}:not_an_asr", bot=None)
    with pytest.raises(ValueError, match="--vocoder .*expected token2wav:FOLDER or FILE.py:FACTORY"):
        load_vocoder(str(tmp_path / "none.py:make"))
    with pytest.raises(ValueError, match="returned Asr, which has no synthesize"):
        load_vocoder(f"{plugin}:make")


def test_consistency_is_scored_in_the_plugin_asr_form(plugin, tmp_path):
    """transcribe_replies stores the reply text in the ASR's form; echat scoring compares that."""
    from osum_echat.eval import echat_eval
    from osum_echat.eval.generation import transcribe_replies
    from osum_echat.eval.run import RunConfig, _generated
    from osum_echat.eval.store import KeyedJsonl

    split = tmp_path / "gen" / "split" / "0"  # the harness's layout: job 0 of one
    split.mkdir(parents=True)
    (split / "text").write_text("a\tI am here for you\nb\tno audio\nc\t<SAD>\n", encoding="utf-8")
    (split / "codes").write_text("a 1 2 3 4\nb\nc 5 6 7\n", encoding="utf-8")
    (tmp_path / "voc.py").write_text(H.VOCODER_PY)
    asr = load_asr(f"{plugin}:make:spoken words", bot=None)
    assert transcribe_replies(split, load_vocoder(f"{tmp_path / 'voc.py'}:make"), asr) == 3
    gen = _generated(RunConfig(suite="echat", data="-", out=str(tmp_path)))
    assert gen["a"]["reply_form"] == "spoken words" and gen["a"]["transcript"] == "spoken words"
    rows = KeyedJsonl(split / "transcripts.jsonl").rows
    assert rows["a"] == {"transcript": "spoken words", "has_audio": True, "reply_form": "spoken words"}
    assert rows["b"] == {"transcript": None, "has_audio": False, "reply_form": "spoken words"}
    item = {"reply": "I am here for you", "labels": {}, **rows["a"]}
    assert echat_eval.score(item, think_on=False)["consistency"]["errors"] == 0
    item.pop("reply_form")  # without the ASR's form the written reply is compared: all wrong
    assert echat_eval.score(item, think_on=False)["consistency"]["errors"] > 0
    tags_only = {"reply": "<SAD>", "labels": {}, **rows["c"]}
    assert "consistency" not in echat_eval.score(tags_only, think_on=False)
