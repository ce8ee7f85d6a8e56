"""Padding-free ("varlen") LLM input for flash-attention kernels.

A batch's rows hold one or more examples whose position ids restart at 0 (``model/batch.py``)
and a padding tail. With SDPA/eager, transformers turns those restarts into a block-diagonal
causal mask per row. Flash-attention 2 takes no mask; instead every non-padding position of
the batch is laid end to end on one row and the kernel gets the sequence boundaries
(``cu_seqlens``): no padding is computed and no example attends to another.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from osum_echat.model.batch import PAD


@dataclass
class VarlenLayout:
    """Where the kept positions come from and how they split into sequences.

    index         (N,) long    flat ``row * L + col`` of every non-padding position, in order
    position_ids  (1, N) long  the batch's position ids at those positions
    cu_seqlens    (S+1,) int32 cumulative sequence lengths (0, len_0, len_0 + len_1, ..., N)
    max_len       int          longest sequence
    """

    index: torch.Tensor
    position_ids: torch.Tensor
    cu_seqlens: torch.Tensor
    max_len: int

    def flash_kwargs(self) -> dict:
        """The keyword arguments transformers' flash-attention path takes for varlen input."""
        return {"cu_seq_lens_q": self.cu_seqlens, "cu_seq_lens_k": self.cu_seqlens,
                "max_length_q": self.max_len, "max_length_k": self.max_len}


def varlen_layout(kinds: torch.Tensor, position_ids: torch.Tensor) -> VarlenLayout:
    """(B, L) kinds and position ids -> the padding-free layout. A sequence starts wherever
    the position id is 0 (each example, and each row's first position)."""
    keep = (kinds != PAD).reshape(-1)
    index = torch.nonzero(keep, as_tuple=True)[0]
    if index.numel() == 0:
        raise ValueError("varlen_layout: the batch has no non-padding position")
    pos = position_ids.reshape(-1)[index]
    if int(pos[0]) != 0:
        raise ValueError("varlen_layout: the first kept position must start a sequence (position id 0)")
    starts = torch.nonzero(pos == 0, as_tuple=True)[0]
    ends = torch.cat([starts[1:], starts.new_tensor([index.numel()])])
    cu = torch.cat([starts.new_zeros(1), ends]).to(torch.int32)
    return VarlenLayout(index=index, position_ids=pos[None], cu_seqlens=cu,
                        max_len=int((ends - starts).max()))


def varlen_hidden_states(body: nn.Module, emb: torch.Tensor, kinds: torch.Tensor,
                         position_ids: torch.Tensor) -> torch.Tensor:
    """Run the Qwen2 body (decoder stack + final norm) on the padding-free layout.

    emb (B, L, H) -> last hidden states (B, L, H); padding positions get zeros (they carry no
    target). The body must use a flash-attention implementation (which reads ``cu_seq_lens_*``).
    """
    b, length, hidden = emb.shape
    lay = varlen_layout(kinds, position_ids)
    flat = emb.reshape(b * length, hidden).index_select(0, lay.index)[None]
    out = body(inputs_embeds=flat, position_ids=lay.position_ids, attention_mask=None, use_cache=False,
               **lay.flash_kwargs()).last_hidden_state[0]
    full = out.new_zeros(b * length, out.shape[-1]).index_copy(0, lay.index, out)
    return full.view(b, length, -1)
