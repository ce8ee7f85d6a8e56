"""Paralinguistic labels: canonical names, tag and natural-language spellings, and which of them
a think string names.

Canonical groups are ``age`` (child / adult / old), ``gender`` (male / female), ``emotion``
(neutral, happy, sad, angry, surprise, fear, disgust) and ``event`` (laugh, cough, cry, scream,
sigh, throat_clearing, sneeze). A think string may name them as tags (``<HAPPY>``, tag think
style) or in words, English or Chinese (language think style); both are parsed.
"""

from __future__ import annotations

import re

# canonical label -> spellings (lower case; English words match on word boundaries)
LEXICON: dict[str, dict[str, tuple[str, ...]]] = {
    "age": {
        "child": ("child", "kid", "children", "young child", "儿童", "小孩", "孩子", "童声"),
        "adult": ("adult", "youth", "middle_age", "middle-aged", "middle aged", "young adult", "成年", "成人",
                  "青年", "中年"),
        "old": ("old", "elderly", "senior", "aged", "老年", "老人", "年长"),
    },
    "gender": {
        "male": ("male", "man", "boy", "男", "男性", "男生"),
        "female": ("female", "woman", "girl", "女", "女性", "女生"),
    },
    "emotion": {
        "neutral": ("neutral", "calm", "平静", "中立", "中性"),
        "happy": ("happy", "joy", "joyful", "glad", "cheerful", "开心", "高兴", "快乐", "愉悦"),
        "sad": ("sad", "sadness", "upset", "unhappy", "难过", "悲伤", "伤心", "哭腔"),
        "angry": ("angry", "anger", "mad", "furious", "生气", "愤怒"),
        "surprise": ("surprise", "surprised", "惊讶", "吃惊"),
        "fear": ("fear", "fearful", "afraid", "scared", "害怕", "恐惧"),
        "disgust": ("disgust", "disgusted", "厌恶", "恶心"),
    },
    "event": {
        "laugh": ("laugh", "laughter", "laughing", "笑声", "大笑"),
        "cough": ("cough", "coughing", "咳嗽"),
        "cry": ("cry", "crying", "sob", "哭泣", "哭声"),
        "scream": ("scream", "screaming", "尖叫"),
        "sigh": ("sigh", "sighing", "叹气"),
        "throat_clearing": ("throat clearing", "throat_clearing", "throatclearing", "清嗓子", "清嗓"),
        "sneeze": ("sneeze", "sneezing", "打喷嚏", "喷嚏"),
    },
}
GROUPS = tuple(LEXICON)
_TAG = re.compile(r"<([^<>]+)>")


def canonical(group: str, value: str | None) -> str | None:
    """A label in any spelling (``"<FEMALE>"``, ``"女"``, ``"Middle_Age"``) -> canonical name or None."""
    if not value:
        return None
    v = value.strip().strip("<>").strip().lower()
    for name, spellings in LEXICON.get(group, {}).items():
        if v == name or v in spellings:
            return name
    return None


def _word_hit(text: str, spelling: str) -> bool:
    if re.search(r"[a-z]", spelling):
        return re.search(rf"(?<![a-z]){re.escape(spelling)}(?![a-z])", text) is not None
    return spelling in text


def named_labels(think: str) -> dict[str, set[str]]:
    """Every canonical label of each group the text names, as a tag or in words (en / zh).

    Chinese single-character genders (男 / 女) count only when no longer spelling matched, and a
    longer match hides the shorter ones it contains (``female`` does not also name ``male``).
    """
    text = (think or "").lower()
    out: dict[str, set[str]] = {g: set() for g in GROUPS}
    for tag in _TAG.findall(text):
        for g in GROUPS:
            c = canonical(g, tag)
            if c:
                out[g].add(c)
    plain = _TAG.sub(" ", text)
    for g, names in LEXICON.items():
        hits = sorted(((s, n) for n, sp in names.items() for s in sp if _word_hit(plain, s)),
                      key=lambda x: -len(x[0]))
        kept: list[str] = []
        for s, n in hits:
            if any(s in longer for longer in kept):
                continue
            kept.append(s)
            out[g].add(n)
    return out


def think_names_reference(think: str, reference: dict[str, str]) -> dict[str, bool]:
    """For each group with a reference label: does the think string name it (and no other label
    of that group)? ``reference`` maps group -> label in any spelling; unknown labels are skipped."""
    named = named_labels(think)
    out = {}
    for g, v in reference.items():
        c = canonical(g, v)
        if g in GROUPS and c:
            out[g] = named[g] == {c}
    return out
