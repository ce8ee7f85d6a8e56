"""Token-by-token reply streaming splits think from answer and passes codes through."""

from __future__ import annotations


def test_think_and_text_deltas_and_codes(tiny_tokenizer):
    from osum_echat.serve.reply_stream import ReplyStream, think_and_answer

    assert think_and_answer("<think>the user is sad") == ("the user is sad", "")
    assert think_and_answer("<think>sad<think end> cheer up") == ("sad", "cheer up")
    assert think_and_answer("hello") == ("", "hello")
    im_end, boundary = 9999, 4096
    ids = tiny_tokenizer.encode("<think>the user sounds happy<think end>hello world", add_special_tokens=False)
    rs = ReplyStream(tiny_tokenizer, im_end, boundary)
    got: dict = {"think": "", "text": "", "codes": []}
    text_ids: list[int] = []
    for tok in ids + [im_end]:
        text_ids.append(tok)
        for kind, value in rs.push(text_ids, tok, "text"):
            got[kind] += value
    for code in [boundary, 5, 7, boundary]:
        for kind, value in rs.push(text_ids, code, "speech"):
            got[kind] += value
    assert got["think"].strip() == "the user sounds happy"
    assert got["text"] == "hello world"
    assert got["codes"] == [5, 7] and rs.codes == [5, 7]
