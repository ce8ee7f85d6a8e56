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

# Empathy: the spoken reply of the S2S tasks opens according to the user's emotion.
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
# prosody (espeak-ng -p 0-99, speed factor): age moves the pitch (child high+fast, old low+slow)
# within each gender's range; emotion moves speed, loudness, word gaps and a little pitch
# (happy: fast+loud, sad: slow+soft+gaps).
AGE_PROSODY = {"child": (65, 1.1), "adult": (50, 1.0), "old": (35, 0.87)}
EMOTION_PROSODY = {"happy": (5, 1.2, 150, 0), "sad": (-5, 0.8, 55, 6), "neutral": (0, 1.0, 100, 0)}
BASE_SPEED = {"en": 165, "zh": 150}


def think_string(lang: str, age: str, gender: str, emotion: str, question: str) -> str:
    """The language-style CoT of the empathy tasks: who speaks, how, and what is asked."""
    if lang == "en":
        return f"a {emotion} {age} {gender} user asks {question}"
    zh = {"child": "儿童", "adult": "成年", "old": "老年", "male": "男性", "female": "女性",
          "happy": "开心", "sad": "难过", "neutral": "平静"}
    return f"{zh[age]}{zh[gender]}用户语气{zh[emotion]}问{question}"


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


def qa_pairs(lang: str) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """[((question label, question spoken), (answer label, answer spoken))]."""
    if lang == "en":
        return [((q, q), (a, a)) for q, a in EN_QA]
    return list(ZH_QA)
