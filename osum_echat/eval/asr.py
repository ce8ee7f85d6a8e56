"""Language-aware ASR error rates of one reference / hypothesis pair.

Chinese is scored by character (CER), English by word (WER); mixed text by the mixed tokens of
:func:`osum_echat.eval.wer.tokens` (CJK characters + Latin words, "MER"). Normalisation is the
project's scoring normalisation (NFKC, ``<TAG>``s removed, punctuation and symbols to spaces,
apostrophes kept, lower case; docs/eval.md).
"""

from __future__ import annotations

from osum_echat.eval.wer import _CJK, error_counts, normalize_for_scoring

_LATIN = set("abcdefghijklmnopqrstuvwxyz")


def text_language(text: str) -> str:
    """'zh' (only CJK letters), 'en' (only Latin letters), 'mixed' or 'none' after normalisation."""
    t = normalize_for_scoring(text)
    cjk = bool(_CJK.search(t))
    latin = any(c in _LATIN for c in t)
    if cjk and latin:
        return "mixed"
    return "zh" if cjk else ("en" if latin else "none")


def asr_errors(ref: str, hyp: str) -> dict:
    """{lang, unit, errors, ref_tokens, sub, del, ins, rate} with the unit picked by the language
    of the reference: 'char' for Chinese, 'word' for English and mixed text."""
    lang = text_language(ref)
    unit = "char" if lang == "zh" else "word"
    c = error_counts(ref, hyp, unit)
    return {"lang": lang, "unit": unit, "errors": c.errors, "ref_tokens": c.ref, "sub": c.sub,
            "del": c.dele, "ins": c.ins, "rate": c.rate}


def pool_rates(rows: list[dict]) -> dict:
    """Corpus-level rates of per-item :func:`asr_errors` dicts: cer (Chinese items), wer
    (English items), mer (every item, its own unit), each with its token count."""
    out: dict = {}
    for name, keep in (("cer", lambda r: r["lang"] == "zh"), ("wer", lambda r: r["lang"] in ("en", "mixed")),
                       ("mer", lambda r: True)):
        sel = [r for r in rows if keep(r)]
        ref = sum(r["ref_tokens"] for r in sel)
        err = sum(r["errors"] for r in sel)
        if sel:
            out[name] = {"rate": err / ref if ref else float(err > 0), "errors": err, "ref_tokens": ref,
                         "n": len(sel)}
    return out
