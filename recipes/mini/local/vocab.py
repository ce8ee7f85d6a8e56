"""The closed vocabulary of the mini corpus: English and Mandarin sentences (Chinese characters
for labels, tone-numbered pinyin for espeak-ng's ``cmn-latn-pinyin`` voice), question -> answer
dialogues, and the speaker attributes (gender voices, age and emotion prosody)."""

from __future__ import annotations

import random

EN_NUM = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
          "eighteen", "nineteen", "twenty"]
ZH_DIGIT = [("零", "ling2"), ("一", "yi1"), ("二", "er4"), ("三", "san1"), ("四", "si4"),
            ("五", "wu3"), ("六", "liu4"), ("七", "qi1"), ("八", "ba1"), ("九", "jiu3")]
ZH_DIGIT_CHARS = "".join(c for c, _ in ZH_DIGIT)


def zh_num(n: int) -> tuple[str, str]:
    """1..20 as (characters, pinyin)."""
    if n < 10:
        return ZH_DIGIT[n]
    tens = [] if n < 20 else [ZH_DIGIT[n // 10]]
    ones = [ZH_DIGIT[n % 10]] if n % 10 else []
    parts = tens + [("十", "shi2")] + ones
    return "".join(c for c, _ in parts), " ".join(p for _, p in parts)


EN_CMDS = ["turn on the light", "turn off the light", "open the door", "close the door",
           "open the window", "close the window", "play some music", "stop the music",
           "turn up the volume", "turn down the volume", "call my mother", "call my father",
           "start the timer", "stop the timer", "set an alarm", "cancel the alarm"]
ZH_CMDS = [("开灯", "kai1 deng1"), ("关灯", "guan1 deng1"), ("开门", "kai1 men2"),
           ("关门", "guan1 men2"), ("打开窗户", "da3 kai1 chuang1 hu4"),
           ("关上窗户", "guan1 shang4 chuang1 hu4"), ("播放音乐", "bo1 fang4 yin1 yue4"),
           ("停止音乐", "ting2 zhi3 yin1 yue4"), ("调大音量", "tiao2 da4 yin1 liang4"),
           ("调小音量", "tiao2 xiao3 yin1 liang4"), ("给妈妈打电话", "gei3 ma1 ma1 da3 dian4 hua4"),
           ("给爸爸打电话", "gei3 ba4 ba4 da3 dian4 hua4"), ("开始计时", "kai1 shi3 ji4 shi2"),
           ("停止计时", "ting2 zhi3 ji4 shi2"), ("设置闹钟", "she4 zhi4 nao4 zhong1"),
           ("取消闹钟", "qu3 xiao1 nao4 zhong1")]

# (question, answer) pairs; Mandarin entries are ((chars, pinyin), (chars, pinyin)).
EN_QA = [("what time is it", "it is nine o'clock"), ("how are you", "i am fine thank you"),
         ("what is your name", "my name is echo"), ("where do you live", "i live in the computer"),
         ("what day is it today", "today is monday"), ("what is the weather like", "it is sunny today"),
         ("can you sing a song", "la la la"), ("what is two plus three", "it is five"),
         ("what color is the sky", "the sky is blue"), ("do you like music", "yes i love music"),
         ("good morning", "good morning to you"), ("good night", "sleep well"),
         ("thank you", "you are welcome"), ("tell me a story", "once upon a time")]
ZH_QA = [(("现在几点", "xian4 zai4 ji3 dian3"), ("现在九点", "xian4 zai4 jiu3 dian3")),
         (("你好吗", "ni3 hao3 ma5"), ("我很好谢谢", "wo3 hen3 hao3 xie4 xie4")),
         (("你叫什么名字", "ni3 jiao4 shen2 me5 ming2 zi4"), ("我叫小回", "wo3 jiao4 xiao3 hui2")),
         (("今天星期几", "jin1 tian1 xing1 qi1 ji3"), ("今天星期一", "jin1 tian1 xing1 qi1 yi1")),
         (("今天天气怎么样", "jin1 tian1 tian1 qi4 zen3 me5 yang4"),
          ("今天是晴天", "jin1 tian1 shi4 qing2 tian1")),
         (("一加一等于几", "yi1 jia1 yi1 deng3 yu2 ji3"), ("等于二", "deng3 yu2 er4")),
         (("天空是什么颜色", "tian1 kong1 shi4 shen2 me5 yan2 se4"),
          ("天空是蓝色的", "tian1 kong1 shi4 lan2 se4 de5")),
         (("你喜欢音乐吗", "ni3 xi3 huan1 yin1 yue4 ma5"), ("我很喜欢音乐", "wo3 hen3 xi3 huan1 yin1 yue4")),
         (("早上好", "zao3 shang4 hao3"), ("早上好呀", "zao3 shang4 hao3 ya5")),
         (("晚安", "wan3 an1"), ("祝你好梦", "zhu4 ni3 hao3 meng4")),
         (("谢谢你", "xie4 xie4 ni3"), ("不客气", "bu2 ke4 qi4")),
         (("你会唱歌吗", "ni3 hui4 chang4 ge1 ma5"), ("我会唱一点", "wo3 hui4 chang4 yi4 dian3"))]
# Questions whose reply depends on the speaker's age group: {age: answer}.
EN_AGE_QA = [("what should i eat", {"child": "some fruit and milk", "adult": "a chicken salad",
                                     "old": "a bowl of warm soup"}),
             ("what can i do today", {"child": "go and play in the park", "adult": "go for a run",
                                      "old": "take a walk in the garden"})]
ZH_AGE_QA = [(("我该吃什么", "wo3 gai1 chi1 shen2 me5"),
              {"child": ("吃点水果喝牛奶", "chi1 dian3 shui3 guo3 he1 niu2 nai3"),
               "adult": ("吃一份沙拉", "chi1 yi2 fen4 sha1 la1"),
               "old": ("喝一碗热汤", "he1 yi4 wan3 re4 tang1")}),
             (("今天做什么好", "jin1 tian1 zuo4 shen2 me5 hao3"),
              {"child": ("去公园玩吧", "qu4 gong1 yuan2 wan2 ba5"), "adult": ("去跑步吧", "qu4 pao3 bu4 ba5"),
               "old": ("去花园散步吧", "qu4 hua1 yuan2 san4 bu4 ba5")})]
# Questions whose reply opens according to the speaker's emotion (EMPATHY_PREFIX); the replies
# of the other fixed questions are the same whatever the emotion.
EMOTION_QA = {"en": {"how are you", "good morning", "good night", "tell me a story"},
              "zh": {"你好吗", "早上好", "晚安", "你会唱歌吗"}}

# Empathy: the spoken reply to an EMOTION_QA question opens according to the user's emotion.
EMPATHY_PREFIX = {"en": {"sad": ("cheer up ", "cheer up "), "happy": ("great ", "great "),
                         "neutral": ("", "")},
                  "zh": {"sad": ("别难过", "bie2 nan2 guo4 "), "happy": ("太好了", "tai4 hao3 le5 "),
                         "neutral": ("", "")}}
ANSWER_EMOTION = {"sad": "安慰鼓励", "happy": "开心", "neutral": "中立"}

GENDER_TAG = {"male": "<MALE>", "female": "<FEMALE>"}
AGE_TAG = {"child": "<CHILD>", "adult": "<ADULT>", "old": "<OLD>"}
EMOTION_TAG = {"happy": "<HAPPY>", "sad": "<SAD>", "neutral": "<NEUTRAL>"}
TAGS = sorted(set(GENDER_TAG.values()) | set(AGE_TAG.values()) | set(EMOTION_TAG.values()))

# espeak-ng voice variants (espeak-ng-data/voices/!v) by gender; dev and test speakers are never
# seen in training. Many training voices, so that gender is learnt from pitch and formants rather
# than from the identity of a few voices. Left out: variants whose pitch range overlaps the other
# gender at the age levels below (Marco, aunty), whispering, robotic and effect voices.
VOICES = {
    "train": {"male": ["m1", "m2", "m3", "m4", "m5", "Andy", "Denis", "Diogo", "Henrique", "Hugo",
                       "Lee", "antonio", "michel", "miguel", "sandro", "travis", "iven", "norbert",
                       "pedro", "gustave", "Mike", "Gene", "paul", "john"],
              "female": ["f1", "f2", "f3", "Alicia", "Andrea", "anika", "belinda", "grandma",
                         "steph", "steph2"]},
    "dev": {"male": ["m6", "victor"], "female": ["f4", "steph3"]},
    "test": {"male": ["m7", "m8", "pablo"], "female": ["f5", "linda", "Annie"]},
}
ASSISTANT = {"variant": "f2", "pitch": 55, "speed": 1.0}
# prosody (espeak-ng -p 0-99, speed factor) and sox effects: age moves the pitch within each
# gender's range and changes the voice itself: children's formants are higher (sox ``pitch``
# shifts the whole spectrum by +300 cents), older voices shake (``tremolo``: 5 Hz amplitude
# modulation, 85 % deep) and speak a little slower. With pitch and speed levels alone the model
# named the age group of held-out voices at 43-46 %; a shallow tremolo (40 %) or a formant shift
# down for old voices (which made old women sound male) did less (recipes/mini/README.md).
# Emotion moves speed, loudness, word gaps and a little pitch (happy: fast+loud, sad:
# slow+soft+gaps). Age no longer changes the speed much, so that speed tells emotion.
AGE_PROSODY = {"child": (60, 1.05), "adult": (50, 1.0), "old": (40, 0.93)}
AGE_EFFECTS = {"child": ["pitch", "300"], "adult": [], "old": ["tremolo", "5", "85"]}
EMOTION_PROSODY = {"happy": (5, 1.2, 150, 0), "sad": (-5, 0.8, 55, 6), "neutral": (0, 1.0, 100, 0)}
BASE_SPEED = {"en": 165, "zh": 150}


def think_string(lang: str, age: str, gender: str, emotion: str, question: str) -> str:
    """The think (CoT) of the empathy tasks: what is asked, then who asks and how, in the form of
    the ``<TRANSCRIBE> <AGE> <GENDER>`` answer the model learnt in stage 1, plus the emotion tag:
    ``what time is it<ADULT><FEMALE><SAD>``. A think in words ("a sad adult female user asks
    ...") named the emotion less often than the ``<EMOTION>`` task (68 % against 83 %) and the
    reply did not follow it (recipes/mini/README.md); in the tags the model already reads the
    speaker with, the think carries what stage 1 learnt. ``lang`` is kept for other templates."""
    del lang
    return f"{question}{AGE_TAG[age]}{GENDER_TAG[gender]}{EMOTION_TAG[emotion]}"


def random_sentence(lang: str, rng: random.Random) -> tuple[str, str]:
    """(label text, text to speak) of a command, a timer/channel number or a digit string."""
    kind = rng.random()
    if lang == "en":
        if kind < 0.45:
            s = rng.choice(EN_CMDS)
        elif kind < 0.6:
            s = f"set the timer to {EN_NUM[rng.randint(1, 20)]} minutes"
        elif kind < 0.75:
            s = f"turn to channel {EN_NUM[rng.randint(1, 20)]}"
        else:
            s = " ".join(EN_NUM[rng.randint(0, 9)] for _ in range(rng.randint(3, 5)))
        return s, s
    if kind < 0.45:
        return rng.choice(ZH_CMDS)
    if kind < 0.75:
        c, p = zh_num(rng.randint(1, 20))
        if kind < 0.6:
            return f"定时{c}分钟", f"ding4 shi2 {p} fen1 zhong1"
        return f"换到{c}频道", f"huan4 dao4 {p} pin2 dao4"
    ds = [ZH_DIGIT[rng.randint(0, 9)] for _ in range(rng.randint(3, 5))]
    return "".join(c for c, _ in ds), " ".join(p for _, p in ds)


def is_digit_string(label: str) -> bool:
    """Whether a label is one of the random 3-5 digit strings of :func:`random_sentence`
    (``"four six two"``, ``"四六二"``): the ASR items the LLM can only read, never guess."""
    en = label.split()
    if 3 <= len(en) <= 5 and all(w in EN_NUM[:10] for w in en):
        return True
    zh = label.replace(" ", "")
    return 3 <= len(zh) <= 5 and all(c in ZH_DIGIT_CHARS for c in zh)


def questions(lang: str) -> list[tuple[str, str]]:
    """[(question label, question spoken)]: the fixed and emotion-dependent questions, then the
    age-dependent ones (indices are the ``qa`` of the corpus records)."""
    if lang == "en":
        return [(q, q) for q, _ in EN_QA] + [(q, q) for q, _ in EN_AGE_QA]
    return [q for q, _ in ZH_QA] + [q for q, _ in ZH_AGE_QA]


def depends_on(lang: str, qa: int) -> str:
    """What the reply to question ``qa`` depends on: 'emotion', 'age' or 'none'."""
    fixed = EN_QA if lang == "en" else ZH_QA
    if qa >= len(fixed):
        return "age"
    return "emotion" if questions(lang)[qa][0] in EMOTION_QA[lang] else "none"


def answer(lang: str, qa: int, age: str = "adult") -> tuple[str, str]:
    """(label, spoken) of the plain answer (no empathetic opener); age picks the variant of an
    age-dependent question (the text-only tasks use the adult one)."""
    fixed = EN_QA if lang == "en" else ZH_QA
    if qa < len(fixed):
        a = fixed[qa][1]
    else:
        a = (EN_AGE_QA if lang == "en" else ZH_AGE_QA)[qa - len(fixed)][1][age]
    return (a, a) if lang == "en" else a


def qa_pairs(lang: str) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """[((question label, question spoken), (answer label, answer spoken))] of the text-only
    tasks: every question with its default answer (the adult one where the reply depends on age)."""
    return [(q, answer(lang, i)) for i, q in enumerate(questions(lang))]
