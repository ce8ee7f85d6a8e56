"""Joint text ⊕ speech cross-entropy, computed in row chunks so that the full
``(tokens x (V_text + V_speech))`` logits are never materialised.

The class space is ``[0, V_text)`` for text (the LLM's ``lm_head``, no bias) followed by
``[V_text, V_text + V_speech)`` for speech (``speech_head``, with bias). Only the supervised
positions are passed in. Each chunk's logits are made once, in the forward pass, which also
computes the gradients (backward only scales them), so peak extra memory is one chunk of
logits instead of several full copies, and no logits are recomputed.
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


class _JointCrossEntropy(torch.autograd.Function):
    """Summed joint cross-entropy whose gradients are computed during the forward pass.

    Each chunk's logits are made once: max/argmax, log-sum-exp, then (in place) the softmax
    minus the one-hot target, which gives that chunk's gradient for the hidden states and its
    contribution to the head gradients. Backward only scales the stored gradients by the
    incoming scalar, so the logits are never recomputed and never kept.
    """

    @staticmethod
    def forward(ctx, h, w_text, w_speech, b_speech, targets, weights, chunk, grads):  # type: ignore[override]
        v_text = w_text.shape[0]
        m = h.shape[0]
        need_h, need_wt, need_ws, need_b = (grads and h.requires_grad, grads and w_text.requires_grad,
                                            grads and w_speech.requires_grad,
                                            grads and b_speech is not None and b_speech.requires_grad)
        loss = torch.empty(m, dtype=torch.float32, device=h.device)
        pred = torch.empty(m, dtype=torch.long, device=h.device)
        gh = torch.zeros_like(h) if need_h else None
        gwt = torch.zeros_like(w_text, dtype=torch.float32) if need_wt else None
        gws = torch.zeros_like(w_speech, dtype=torch.float32) if need_ws else None
        gb = torch.zeros(w_speech.shape[0], dtype=torch.float32, device=h.device) if need_b else None
        with torch.autocast(device_type=h.device.type, enabled=False):
            for s in range(0, m, chunk):
                lt = ls = pt = ps = pt_c = ps_c = None  # free the previous chunk before the next
                e = min(m, s + chunk)
                hc = h[s:e]
                lt, ls = _chunk_logits(hc, w_text, w_speech, b_speech)
                t = targets[s:e]
                rows = torch.arange(e - s, device=h.device)
                is_text = t < v_text
                tl = torch.where(is_text, lt[rows, t.clamp(max=v_text - 1)], ls[rows, (t - v_text).clamp(min=0)])
                mt, at = lt.max(-1)
                ms, as_ = ls.max(-1)
                pred[s:e] = torch.where(mt >= ms, at, as_ + v_text)
                mx = torch.maximum(mt, ms)[:, None]
                # exp(logit - max) in place; the sums give the log-sum-exp
                pt = lt.sub_(mx).exp_()
                ps = ls.sub_(mx).exp_()
                z = pt.sum(-1) + ps.sum(-1)
                loss[s:e] = z.log() + mx[:, 0] - tl
                if not (need_h or need_wt or need_ws or need_b):
                    continue
                inv = z.reciprocal()[:, None]
                pt.mul_(inv)  # softmax over the joint space ...
                ps.mul_(inv)
                pt[rows[is_text], t[is_text]] -= 1.0  # ... minus the one-hot target
                ps[rows[~is_text], t[~is_text] - v_text] -= 1.0
                if weights is not None:  # d(sum w_i l_i) = w_i * (softmax - onehot)
                    wc = weights[s:e, None].float()
                    pt.mul_(wc)
                    ps.mul_(wc)
                cdt = hc.dtype
                pt_c, ps_c = pt.to(cdt), ps.to(cdt)
                if gh is not None:
                    gh[s:e] = (pt_c @ w_text.to(cdt) + ps_c @ w_speech.to(cdt)).to(gh.dtype)
                if gwt is not None:
                    gwt += (pt_c.t() @ hc).float()
                if gws is not None:
                    gws += (ps_c.t() @ hc).float()
                if gb is not None:
                    gb += ps.sum(0)
        ctx.save_for_backward(*(x if x is not None else torch.empty(0) for x in (gh, gwt, gws, gb)))
        ctx.present = (gh is not None, gwt is not None, gws is not None, gb is not None)
        ctx.dtypes = (h.dtype, w_text.dtype, w_speech.dtype, b_speech.dtype if b_speech is not None else None)
        ctx.mark_non_differentiable(loss, pred)
        total = loss.sum() if weights is None else (loss * weights.float()).sum()
        return total, loss, pred

    @staticmethod
    def backward(ctx, grad_sum, _grad_rows, _grad_pred):  # type: ignore[override]
        saved = ctx.saved_tensors
        out = []
        for g, present, dt in zip(saved, ctx.present, ctx.dtypes):
            out.append((g * grad_sum).to(dt) if present else None)
        return (*out, None, None, None, None)


def joint_cross_entropy(
    hidden: torch.Tensor, targets: torch.Tensor, w_text: torch.Tensor, w_speech: torch.Tensor,
    b_speech: torch.Tensor | None = None, chunk_size: int = 512, weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed loss (differentiable scalar), per-row loss (M,) and argmax (M,), both detached,
    over the joint class space. With ``weights`` (M,), the scalar is ``sum(weights * loss)``
    (the per-row losses stay unweighted).

    hidden (M, D): LLM final hidden states at supervised positions; targets (M,) in
    ``[0, V_text + V_speech)``. Gradients are computed in the forward pass (only when autograd
    needs them), so backward is a scaling.
    """
    if hidden.shape[0] == 0:
        z = hidden.new_zeros(0, dtype=torch.float32)
        return z.sum(), z, targets.new_zeros(0)
    grads = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (hidden, w_text, w_speech, b_speech))
    if weights is not None and weights.shape != targets.shape:
        raise ValueError(f"weights {tuple(weights.shape)} must match targets {tuple(targets.shape)}")
    return _JointCrossEntropy.apply(hidden, w_text, w_speech, b_speech, targets, weights,
                                    max(1, chunk_size), grads)


def reference_joint_cross_entropy(hidden, targets, w_text, w_speech, b_speech=None) -> torch.Tensor:
    """Plain full-logits version (tests and tiny models only)."""
    ls = hidden @ w_speech.t()
    if b_speech is not None:
        ls = ls + b_speech
    logits = torch.cat([hidden @ w_text.t(), ls], dim=-1).float()
    return torch.nn.functional.cross_entropy(logits, targets, reduction="none")
