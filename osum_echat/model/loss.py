"""Joint text ⊕ speech cross-entropy, computed in row chunks so that the full
``(tokens x (V_text + V_speech))`` logits are never materialised.

The class space is ``[0, V_text)`` for text (the LLM's ``lm_head``, no bias) followed by
``[V_text, V_text + V_speech)`` for speech (``speech_head``, with bias). Only the supervised
positions are passed in. Each chunk's logits are made once, in the forward pass, which also
computes the gradients (backward only scales them), so peak extra memory is one chunk of
logits instead of several full copies, and no logits are recomputed. Per-position losses come
out as well (``OsumEChat.forward(batch, per_token=True)``); only when they are asked to be
differentiable and a gradient flows through them are the chunks' logits made a second time.
"""

from __future__ import annotations

import torch


def _chunk_logits(h: torch.Tensor, w_text: torch.Tensor, w_speech: torch.Tensor,
                  b_speech: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """h (c, D) -> text logits (c, Vt) and speech logits (c, Vs), both float32."""
    lt = (h @ w_text.to(h.dtype).t()).float()
    ls = h @ w_speech.to(h.dtype).t()
    if b_speech is not None:
        ls = ls + b_speech.to(h.dtype)
    return lt, ls.float()


def _softmax_minus_onehot(lt: torch.Tensor, ls: torch.Tensor, t: torch.Tensor, v_text: int,
                          with_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """In place on a chunk's logits (c, Vt), (c, Vs): -> (softmax - onehot) for both parts
    (only exp(logit - max) without ``with_grad``), the per-row loss (c,) and the argmax (c,)
    over the joint class space."""
    rows = torch.arange(t.shape[0], device=t.device)
    is_text = t < v_text
    mt, at = lt.max(-1)
    if ls.shape[1]:
        ts = ls[rows, (t - v_text).clamp(min=0)]
        ms, as_ = ls.max(-1)
    elif bool((~is_text).any()):
        raise ValueError("speech targets given to a model without speech classes (no speech head)")
    else:  # a model without speech classes (no speech head): the text vocabulary alone
        ts = lt.new_zeros(t.shape[0])
        ms, as_ = torch.full_like(mt, float("-inf")), torch.zeros_like(at)
    tl = torch.where(is_text, lt[rows, t.clamp(max=v_text - 1)], ts)
    pred = torch.where(mt >= ms, at, as_ + v_text)
    mx = torch.maximum(mt, ms)[:, None]
    # exp(logit - max) in place; the sums give the log-sum-exp
    pt = lt.sub_(mx).exp_()
    ps = ls.sub_(mx).exp_()
    z = pt.sum(-1) + ps.sum(-1)
    loss = z.log() + mx[:, 0] - tl
    if not with_grad:
        return pt, ps, loss, pred
    inv = z.reciprocal()[:, None]
    pt.mul_(inv)  # softmax over the joint space ...
    ps.mul_(inv)
    pt[rows[is_text], t[is_text]] -= 1.0  # ... minus the one-hot target
    ps[rows[~is_text], t[~is_text] - v_text] -= 1.0
    return pt, ps, loss, pred


def _accumulate(pt: torch.Tensor, ps: torch.Tensor, hc: torch.Tensor, w_text: torch.Tensor,
                w_speech: torch.Tensor, grads: list, s: int, e: int) -> None:
    """Add a chunk's d(loss)/d(logits) (c, Vt), (c, Vs), already scaled per row, to the
    gradients ``[gh, gwt, gws, gb]`` (None where not needed)."""
    gh, gwt, gws, gb = grads
    cdt = hc.dtype
    pt_c, ps_c = pt.to(cdt), ps.to(cdt)
    if gh is not None:
        gh[s:e] += (pt_c @ w_text.to(cdt) + ps_c @ w_speech.to(cdt)).to(gh.dtype)
    if gwt is not None:
        gwt += (pt_c.t() @ hc).float()
    if gws is not None:
        gws += (ps_c.t() @ hc).float()
    if gb is not None:
        gb += ps.sum(0)


def _zero_grads(h, w_text, w_speech, b_speech, needs: tuple[bool, bool, bool, bool]) -> list:
    need_h, need_wt, need_ws, need_b = needs
    return [torch.zeros_like(h) if need_h else None,
            torch.zeros_like(w_text, dtype=torch.float32) if need_wt else None,
            torch.zeros_like(w_speech, dtype=torch.float32) if need_ws else None,
            torch.zeros(w_speech.shape[0], dtype=torch.float32, device=h.device) if need_b else None]


class _JointCrossEntropy(torch.autograd.Function):
    """Summed joint cross-entropy whose gradients are computed during the forward pass.

    Each chunk's logits are made once: max/argmax, log-sum-exp, then (in place) the softmax
    minus the one-hot target, which gives that chunk's gradient for the hidden states and its
    contribution to the head gradients. Backward only scales the stored gradients by the
    incoming scalar, so the logits are never recomputed and never kept.

    With ``row_grads`` the per-row losses are differentiable too: the inputs are kept, and a
    backward that receives per-row gradients recomputes the chunks' logits once more (only
    then), scaling each row's ``softmax - onehot`` by its incoming gradient.
    """

    @staticmethod
    def forward(ctx, h, w_text, w_speech, b_speech, targets, weights, chunk,  # type: ignore[override]
                grads, row_grads):
        v_text = w_text.shape[0]
        m = h.shape[0]
        needs = (grads and h.requires_grad, grads and w_text.requires_grad, grads and w_speech.requires_grad,
                 grads and b_speech is not None and b_speech.requires_grad)
        loss = torch.empty(m, dtype=torch.float32, device=h.device)
        pred = torch.empty(m, dtype=torch.long, device=h.device)
        acc = _zero_grads(h, w_text, w_speech, b_speech, needs)
        with torch.autocast(device_type=h.device.type, enabled=False):
            for s in range(0, m, chunk):
                lt = ls = pt = ps = None  # free the previous chunk's logits before making the next
                e = min(m, s + chunk)
                hc = h[s:e]
                lt, ls = _chunk_logits(hc, w_text, w_speech, b_speech)
                pt, ps, loss[s:e], pred[s:e] = _softmax_minus_onehot(lt, ls, targets[s:e], v_text, any(needs))
                if not any(needs):
                    continue
                if weights is not None:  # d(sum w_i l_i) = w_i * (softmax - onehot)
                    wc = weights[s:e, None].float()
                    pt.mul_(wc)
                    ps.mul_(wc)
                _accumulate(pt, ps, hc, w_text, w_speech, acc, s, e)
        ctx.row_grads = bool(row_grads and any(needs))
        keep = (h, w_text, w_speech, b_speech, targets) if ctx.row_grads else (None,) * 5
        ctx.save_for_backward(*(x if x is not None else torch.empty(0) for x in (*acc, *keep)))
        ctx.present = tuple(g is not None for g in acc)
        ctx.has_bias = b_speech is not None
        ctx.chunk = chunk
        ctx.dtypes = (h.dtype, w_text.dtype, w_speech.dtype, b_speech.dtype if b_speech is not None else None)
        ctx.mark_non_differentiable(pred)
        if not ctx.row_grads:
            ctx.mark_non_differentiable(loss)
        total = loss.sum() if weights is None else (loss * weights.float()).sum()
        return total, loss, pred

    @staticmethod
    def backward(ctx, grad_sum, grad_rows, _grad_pred):  # type: ignore[override]
        saved = ctx.saved_tensors
        acc = [g * grad_sum if present else None for g, present in zip(saved[:4], ctx.present)]
        if ctx.row_grads and grad_rows is not None and bool((grad_rows != 0).any()):
            h, w_text, w_speech, b_speech, targets = saved[4:]
            b_speech = b_speech if ctx.has_bias else None
            extra = [torch.zeros_like(g) if g is not None else None for g in acc]
            with torch.no_grad(), torch.autocast(device_type=h.device.type, enabled=False):
                for s in range(0, h.shape[0], ctx.chunk):
                    e = min(h.shape[0], s + ctx.chunk)
                    lt, ls = _chunk_logits(h[s:e], w_text, w_speech, b_speech)
                    pt, ps, _, _ = _softmax_minus_onehot(lt, ls, targets[s:e], w_text.shape[0])
                    g = grad_rows[s:e, None].float()
                    _accumulate(pt.mul_(g), ps.mul_(g), h[s:e], w_text, w_speech, extra, s, e)
            acc = [a + b if a is not None else None for a, b in zip(acc, extra)]
        out = [g.to(dt) if g is not None else None for g, dt in zip(acc, ctx.dtypes)]
        return (*out, None, None, None, None, None)


def joint_cross_entropy(
    hidden: torch.Tensor, targets: torch.Tensor, w_text: torch.Tensor, w_speech: torch.Tensor,
    b_speech: torch.Tensor | None = None, chunk_size: int = 512, weights: torch.Tensor | None = None,
    row_grads: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed loss (differentiable scalar), per-row loss (M,) and argmax (M,) (detached) over
    the joint class space. With ``weights`` (M,), the scalar is ``sum(weights * loss)``
    (the per-row losses stay unweighted).

    hidden (M, D): LLM final hidden states at supervised positions; targets (M,) in
    ``[0, V_text + V_speech)``. Gradients are computed in the forward pass (only when autograd
    needs them), so backward is a scaling. The per-row losses are detached unless
    ``row_grads``: then they are differentiable as well (a backward through them recomputes
    the logits chunk by chunk; full logits are never held).
    """
    if hidden.shape[0] == 0:
        z = hidden.new_zeros(0, dtype=torch.float32)
        return z.sum(), z, targets.new_zeros(0)
    grads = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (hidden, w_text, w_speech, b_speech))
    if weights is not None and weights.shape != targets.shape:
        raise ValueError(f"weights {tuple(weights.shape)} must match targets {tuple(targets.shape)}")
    return _JointCrossEntropy.apply(hidden, w_text, w_speech, b_speech, targets, weights,
                                    max(1, chunk_size), grads, row_grads)


def reference_joint_cross_entropy(hidden, targets, w_text, w_speech, b_speech=None) -> torch.Tensor:
    """Plain full-logits version (tests and tiny models only)."""
    ls = hidden @ w_speech.t()
    if b_speech is not None:
        ls = ls + b_speech
    logits = torch.cat([hidden @ w_text.t(), ls], dim=-1).float()
    return torch.nn.functional.cross_entropy(logits, targets, reduction="none")
