"""The OSUM-EChat model: speech encoder + adapter + Qwen2 LLM + speech embedding/head.

The module tree reproduces the released checkpoints' key names (docs/upstream_compat.md,
"Checkpoint layout"):
``encoder.*``, ``ln_speech.*`` (kept for key compatibility, unused), ``down_sample_2.*``,
``speech_transformer.*``, ``speech_llama_proj.*``, ``llama_model.*`` (plain HF Qwen2 names),
``speech_token_emded.*`` (sic) and ``speech_head.*``. The model never branches on task
names: the batch says what each position is (see ``osum_echat/model/batch.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from osum_echat.model.batch import AUDIO, IGNORE_ID, SPEECH, TEXT, Batch
from osum_echat.model.config import LOSS_NORMS
from osum_echat.model.encoder_cache import EncoderCache, check_cacheable
from osum_echat.model.loss import joint_cross_entropy
from osum_echat.model.packing import varlen_hidden_states


@dataclass(frozen=True)
class SpeechIds:
    """Ids in the speech table: codes 0..boundary-1, the boundary, and the input markers."""

    boundary: int  # 4096: start and end of every speech-output sequence; speech_head's "eos"
    input_bos: int  # 4097: embedded before the adapter output
    input_eos: int  # 4098: embedded after it

    @classmethod
    def from_speech_token_num(cls, n: int) -> "SpeechIds":
        return cls(boundary=n - 1, input_bos=n, input_eos=n + 1)


def param_dtype(module: nn.Module) -> torch.dtype | None:
    """Dtype of ``module``'s first floating-point parameter (None if it has none)."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


class OsumEChat(nn.Module):
    """Composition of built parts; ``forward(batch) -> dict`` with the joint loss and metrics."""

    def __init__(
        self, encoder: nn.Module, down_sample_2: nn.Module, speech_transformer: nn.Module,
        speech_llama_proj: nn.Linear, llm: nn.Module, speech_token_num: int, loss_chunk_size: int = 512,
        loss_norm: str = "token", speech_head: bool = True, speech_loss_weight: float = 1.0,
        speech_input_noise: float = 0.0,
    ):
        super().__init__()
        self.encoder = encoder
        d_enc = speech_llama_proj.in_features
        self.ln_speech = nn.LayerNorm(d_enc)  # present in released checkpoints, never applied
        self.down_sample_2 = down_sample_2
        self.speech_transformer = speech_transformer
        self.speech_llama_proj = speech_llama_proj
        self.llama_model = llm
        hidden = speech_llama_proj.out_features
        self.speech_token_emded = nn.Embedding(speech_token_num + 2, hidden)
        # None for text-only models (OSUM): speech-output tasks are then refused by the decoder
        self.speech_head = nn.Linear(hidden, speech_token_num) if speech_head else None
        self.speech_ids = SpeechIds.from_speech_token_num(speech_token_num)
        self.loss_chunk_size = loss_chunk_size
        if loss_norm not in LOSS_NORMS:
            raise ValueError(f"loss_norm: {loss_norm!r}; choose from {list(LOSS_NORMS)}")
        self.loss_norm = loss_norm
        self.speech_loss_weight = float(speech_loss_weight)
        self.speech_input_noise = float(speech_input_noise)  # training only (ModelConfig)
        self.encoder_cache: EncoderCache | None = None  # enable_encoder_cache(); not in the state dict
        # True with flash-attention: rows run padding-free with sequence boundaries (model/packing.py)
        self.varlen_attention = False

    # ------------------------------------------------------------------ parts of the LLM
    @property
    def text_vocab_size(self) -> int:
        return self.lm_head_weight.shape[0]

    @property
    def speech_token_num(self) -> int:
        """Speech classes (codes + the boundary, 4097 for the release; ``speech_head``'s width
        when there is one); also the id of the input-speech start marker, i.e. the
        ``speech_token_num`` that :func:`osum_echat.model.batch.collate` takes. A model without
        a speech head (OSUM) still has the markers, at ``speech_token_num`` and + 1."""
        return self.speech_ids.input_bos

    @property
    def lm_head_weight(self) -> torch.Tensor:
        return self.llama_model.get_output_embeddings().weight

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.llama_model.get_input_embeddings()(ids)

    def llm_body(self) -> nn.Module:
        """The Qwen2Model (decoder stack + final norm), through a PEFT wrapper if present."""
        llm = self.llama_model
        if hasattr(llm, "get_base_model"):
            llm = llm.get_base_model()
        return llm.model

    @property
    def dtype(self) -> torch.dtype:
        return self.llama_model.get_input_embeddings().weight.dtype

    # ------------------------------------------------------------------ speech input
    def enable_encoder_cache(self, max_mb: float) -> EncoderCache:
        """Serve the frozen encoder's outputs from a host-memory cache of ``max_mb`` MB
        (``osum_echat/model/encoder_cache.py``). Raises if the encoder trains or has dropout."""
        check_cacheable(self.encoder)
        self.encoder_cache = EncoderCache(max_mb)
        return self.encoder_cache

    def embed_speech(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel (N, T, 80), lengths (N,) -> LLM-width embeddings (N, T3, H) and lengths (N,).

        Parts with no trainable parameter run without autograd. Features arrive in float32
        (``audio/features.py``) and are cast to the encoder's parameter dtype here, and the
        encoder output to the adapter's, so a model cast to bf16/fp16 (inference) runs without
        autocast; with fp32 weights under autocast (training) nothing is cast.
        """
        def grad_for(*mods: nn.Module) -> bool:
            return torch.is_grad_enabled() and any(p.requires_grad for m in mods for p in m.parameters())

        adapter = (self.down_sample_2, self.speech_transformer, self.speech_llama_proj)
        enc_dtype = param_dtype(self.encoder)
        if enc_dtype is not None and feats.is_floating_point():
            feats = feats.to(enc_dtype)
        if self.encoder_cache is not None:
            x, lengths = self.encoder_cache.encode(self.encoder, feats, lengths)
        else:
            with torch.set_grad_enabled(grad_for(self.encoder)):
                x, lengths = self.encoder(feats, lengths)
        ad_dtype = param_dtype(self.down_sample_2)
        if ad_dtype is not None:
            x = x.to(ad_dtype)
        with torch.set_grad_enabled(grad_for(*adapter) or x.requires_grad):
            x, lengths = self.down_sample_2(x, lengths)
            x = self.speech_transformer(x, lengths)
            x = self.speech_llama_proj(x)
        return x, lengths

    def embed_speech_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.speech_token_emded(ids)

    def noisy_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` (speech-table inputs) with each code (< the boundary) replaced, with
        probability ``speech_input_noise``, by one of the codes of ``ids`` drawn uniformly: the
        batch's own code distribution, so a codec that uses part of the table (the mini codec's
        256 of 4096) gets plausible wrong codes, not never-trained rows. The boundary and the
        input markers are kept. Draws from the global torch RNG, so a seeded run repeats."""
        pos = torch.nonzero(ids < self.speech_ids.boundary, as_tuple=True)[0]
        if pos.numel() < 2:
            return ids
        hit = pos[torch.rand(pos.shape, device=ids.device) < self.speech_input_noise]
        src = pos[torch.randint(pos.numel(), hit.shape, device=ids.device)]
        out = ids.clone()
        out[hit] = ids[src]
        return out

    # ------------------------------------------------------------------ assembly
    def embed_inputs(self, batch: Batch) -> torch.Tensor:
        """Per-position input embeddings (B, L, H) from the batch layout."""
        ids, kinds = batch.input_ids, batch.kinds
        dtype = self.dtype
        emb = torch.zeros(*ids.shape, self.speech_token_emded.embedding_dim, device=ids.device, dtype=dtype)
        text = kinds == TEXT
        if text.any():
            emb = emb.index_put(torch.nonzero(text, as_tuple=True), self.embed_tokens(ids[text]).to(dtype))
        speech = kinds == SPEECH
        if speech.any():
            speech_ids = ids[speech]
            if self.training and self.speech_input_noise > 0:
                speech_ids = self.noisy_codes(speech_ids)
            emb = emb.index_put(torch.nonzero(speech, as_tuple=True), self.speech_token_emded(speech_ids).to(dtype))
        if batch.audio_slots.numel():
            if batch.wavs is not None:  # data.features_on_device: log-mel here, in one call
                batch = batch.to(ids.device).featurize()
            x, lengths = self.embed_speech(batch.feats.to(ids.device), batch.feats_lengths.to(ids.device))
            slots = batch.audio_slots.to(ids.device)
            if not torch.equal(lengths, slots[:, 2]):
                raise ValueError(
                    f"adapter produced {lengths.tolist()} frames but the batch reserved "
                    f"{slots[:, 2].tolist()} (keys {batch.keys})"
                )
            valid = torch.arange(x.shape[1], device=ids.device)[None, :] < lengths[:, None]
            rows = slots[:, 0, None].expand_as(valid)[valid]
            cols = (slots[:, 1, None] + torch.arange(x.shape[1], device=ids.device)[None, :])[valid]
            if not bool((kinds[rows, cols] == AUDIO).all()):
                raise ValueError("audio slots do not match the AUDIO positions of the batch")
            emb = emb.index_put((rows, cols), x[valid].to(dtype))
        return emb

    def hidden_states(self, batch: Batch) -> torch.Tensor:
        """LLM final hidden states (after the last RMSNorm), (B, L, H)."""
        emb = self.embed_inputs(batch)
        if self.varlen_attention:
            return varlen_hidden_states(self.llm_body(), emb, batch.kinds.to(emb.device),
                                        batch.position_ids.to(emb.device))
        out = self.llm_body()(inputs_embeds=emb, position_ids=batch.position_ids.to(emb.device),
                              attention_mask=None, use_cache=False)
        return out.last_hidden_state

    # ------------------------------------------------------------------ training forward
    @staticmethod
    def _sample_weights(batch: Batch, sel: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Per supervised position: base / (its example's summed base x examples with any), so
        the weighted sum is the mean over examples of each one's (base-weighted) mean token
        loss. Examples are told apart by ``batch.spans`` (several share a row when packed)."""
        owner = torch.full(sel.shape, -1, dtype=torch.long, device=sel.device)
        for i, (r, s, e) in enumerate(batch.spans):
            owner[r, s:e] = i
        ids = owner[sel]
        if bool((ids < 0).any()):
            raise ValueError("loss_norm=sample needs batch.spans covering every supervised position "
                             "(batches from model.batch.collate have them)")
        sums = torch.zeros(int(ids.max()) + 1, dtype=torch.float32, device=sel.device).index_add_(0, ids, base)
        return base / (sums[ids] * int((sums > 0).sum()))

    def _loss_weights(self, batch: Batch, sel: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        """(M,) weights whose sum is 1 (the objective is ``sum(w * loss)``), or None for the
        plain token mean: token norm with ``speech_loss_weight`` 1."""
        n = targets.numel()
        if not n or (self.loss_norm == "token" and self.speech_loss_weight == 1.0):
            return None
        base = torch.ones(n, dtype=torch.float32, device=targets.device)
        if self.speech_loss_weight != 1.0:
            base = torch.where(targets >= self.text_vocab_size, base * self.speech_loss_weight, base)
        if self.loss_norm == "sample":
            return self._sample_weights(batch, sel, base)
        return base / base.sum()

    def forward(self, batch: Batch, per_token: bool = False) -> dict[str, torch.Tensor]:
        """Joint cross-entropy over text ⊕ speech classes: the mean over supervised tokens
        (``loss_norm="token"``) or the mean over examples of each one's mean token loss
        (``"sample"``); with ``speech_loss_weight`` != 1 both are weighted means in which a
        speech-code target counts that much relative to a text target.

        Returns ``loss`` (the objective) plus detached metrics ``loss_token`` (always the
        per-token mean), ``loss_text``, ``loss_speech``, ``acc_text``, ``acc_speech`` and
        counts ``num_tokens``, ``num_text``, ``num_speech``. With ``per_token``, also
        ``per_token_loss`` (B, L) float32 aligned with ``batch.labels``: the cross-entropy of
        the label at each supervised position, 0 where the label is ``IGNORE_ID``. It comes
        from the same chunked computation (no full logits) and is differentiable when autograd
        is on (e.g. sequence log-likelihoods for a preference objective).
        """
        h = self.hidden_states(batch)
        labels = batch.labels.to(h.device)
        sel = labels != IGNORE_ID
        targets = labels[sel]
        n = targets.numel()
        weights = self._loss_weights(batch, sel, targets)
        if self.speech_head is not None:
            w_speech, b_speech = self.speech_head.weight, self.speech_head.bias
        else:  # no speech classes: the joint space is the text vocabulary alone
            w_speech, b_speech = self.lm_head_weight.new_zeros(0, h.shape[-1]), None
        loss_sum, per_tok, pred = joint_cross_entropy(
            h[sel], targets, self.lm_head_weight, w_speech, b_speech,
            self.loss_chunk_size, weights=weights, row_grads=per_token,
        )
        loss = loss_sum if weights is not None else loss_sum / max(n, 1)
        if n == 0:  # keep the graph connected so DDP/ZeRO see every parameter
            loss = loss + 0.0 * h.sum()
        with torch.no_grad():
            is_text = targets < self.text_vocab_size
            correct = pred == targets
            out = {"loss": loss, "loss_token": per_tok.detach().sum() / max(n, 1),
                   "num_tokens": torch.tensor(n, device=h.device)}
            for name, m in (("text", is_text), ("speech", ~is_text)):
                k = int(m.sum())
                out[f"num_{name}"] = torch.tensor(k, device=h.device)
                out[f"loss_{name}"] = per_tok[m].sum().detach() / max(k, 1)
                out[f"acc_{name}"] = correct[m].float().sum() / max(k, 1)
        if per_token:
            zeros = torch.zeros(labels.shape, dtype=torch.float32, device=h.device)
            out["per_token_loss"] = zeros.masked_scatter(sel, per_tok)
        return out
