"""Joint text ⊕ speech cross-entropy, computed in row chunks so that the full
``(tokens x (V_text + V_speech))`` logits are never materialised.

The class space is ``[0, V_text)`` for text (the LLM's ``lm_head``, no bias) followed by
``[V_text, V_text + V_speech)`` for speech (``speech_head``, with bias). Only the supervised
positions are passed in. Forward keeps per-row log-sum-exp; backward recomputes each chunk's
logits, so peak extra memory is one chunk of logits instead of several full copies.
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
    @staticmethod
    def forward(ctx, h, w_text, w_speech, b_speech, targets, chunk):  # type: ignore[override]
        v_text = w_text.shape[0]
        m = h.shape[0]
        loss = torch.empty(m, dtype=torch.float32, device=h.device)
        pred = torch.empty(m, dtype=torch.long, device=h.device)
        lse = torch.empty(m, dtype=torch.float32, device=h.device)
        with torch.autocast(device_type=h.device.type, enabled=False):
            for s in range(0, m, chunk):
                e = min(m, s + chunk)
                lt, ls = _chunk_logits(h[s:e], w_text, w_speech, b_speech)
                lse_c = torch.logaddexp(lt.logsumexp(-1), ls.logsumexp(-1))
                t = targets[s:e]
                is_text = t < v_text
                tl = torch.where(
                    is_text,
                    lt.gather(1, t.clamp(max=v_text - 1)[:, None])[:, 0],
                    ls.gather(1, (t - v_text).clamp(min=0)[:, None])[:, 0],
                )
                loss[s:e] = lse_c - tl
                lse[s:e] = lse_c
                mt, at = lt.max(-1)
                ms, as_ = ls.max(-1)
                pred[s:e] = torch.where(mt >= ms, at, as_ + v_text)
        ctx.save_for_backward(h, w_text, w_speech, b_speech if b_speech is not None else torch.empty(0),
                              targets, lse)
        ctx.chunk = chunk
        ctx.has_bias = b_speech is not None
        ctx.mark_non_differentiable(pred)
        return loss, pred

    @staticmethod
    def backward(ctx, grad_loss, _grad_pred):  # type: ignore[override]
        h, w_text, w_speech, b_speech, targets, lse = ctx.saved_tensors
        b_speech = b_speech if ctx.has_bias else None
        need_h, need_wt, need_ws, need_b = ctx.needs_input_grad[:4]
        v_text = w_text.shape[0]
        gh = torch.zeros_like(h) if need_h else None
        gwt = torch.zeros_like(w_text, dtype=torch.float32) if need_wt else None
        gws = torch.zeros_like(w_speech, dtype=torch.float32) if need_ws else None
        gb = torch.zeros(w_speech.shape[0], dtype=torch.float32, device=h.device) if (need_b and ctx.has_bias) else None
        m = h.shape[0]
        with torch.autocast(device_type=h.device.type, enabled=False):
            for s in range(0, m, ctx.chunk):
                e = min(m, s + ctx.chunk)
                hc = h[s:e]
                lt, ls = _chunk_logits(hc, w_text, w_speech, b_speech)
                g = grad_loss[s:e].float()[:, None]
                # d loss / d logits = softmax - onehot, scaled by the incoming gradient
                pt = (lt - lse[s:e, None]).exp_().mul_(g)
                ps = (ls - lse[s:e, None]).exp_().mul_(g)
                t = targets[s:e]
                rows = torch.arange(e - s, device=h.device)
                is_text = t < v_text
                pt[rows[is_text], t[is_text]] -= g[is_text, 0]
                ps[rows[~is_text], t[~is_text] - v_text] -= g[~is_text, 0]
                cdt = hc.dtype
                if gh is not None:
                    gh[s:e] = (pt.to(cdt) @ w_text.to(cdt) + ps.to(cdt) @ w_speech.to(cdt)).to(gh.dtype)
                if gwt is not None:
                    gwt += (pt.to(cdt).t() @ hc).float()
                if gws is not None:
                    gws += (ps.to(cdt).t() @ hc).float()
                if gb is not None:
                    gb += ps.sum(0)
        return (
            gh,
            gwt.to(w_text.dtype) if gwt is not None else None,
            gws.to(w_speech.dtype) if gws is not None else None,
            gb.to(b_speech.dtype) if gb is not None else None,
            None,
            None,
        )


def joint_cross_entropy(
    hidden: torch.Tensor, targets: torch.Tensor, w_text: torch.Tensor, w_speech: torch.Tensor,
    b_speech: torch.Tensor | None = None, chunk_size: int = 512,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row loss (M,) float32 and argmax prediction (M,) over the joint class space.

    hidden (M, D): LLM final hidden states at supervised positions; targets (M,) in
    ``[0, V_text + V_speech)``.
    """
    if hidden.shape[0] == 0:
        z = hidden.new_zeros(0, dtype=torch.float32)
        return z, targets.new_zeros(0)
    return _JointCrossEntropy.apply(hidden, w_text, w_speech, b_speech, targets, max(1, chunk_size))


def reference_joint_cross_entropy(hidden, targets, w_text, w_speech, b_speech=None) -> torch.Tensor:
    """Plain full-logits version (tests and tiny models only)."""
    ls = hidden @ w_speech.t()
    if b_speech is not None:
        ls = ls + b_speech
    logits = torch.cat([hidden @ w_text.t(), ls], dim=-1).float()
    return torch.nn.functional.cross_entropy(logits, targets, reduction="none")
