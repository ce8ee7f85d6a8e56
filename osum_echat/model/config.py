"""Model configuration (the ``model:`` section). Defaults are the released OSUM-EChat 3B."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EncoderConfig:
    """Whisper-medium-shaped speech encoder (conv front-end halves 100 Hz log-mel to 50 Hz)."""

    input_dim: int = 80
    d_model: int = 1024
    num_heads: int = 16
    ffn_dim: int = 4096
    num_layers: int = 24
    max_positions: int = 30000  # 600 s at 50 Hz
    dropout: float = 0.1
    positional_dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_checkpointing: bool = True

    def validate(self) -> None:
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} not divisible by num_heads {self.num_heads}")


@dataclass
class AdapterConfig:
    """Causal conv downsampler (x4) + small transformer + projection to the LLM width."""

    downsample_rate: int = 4
    d_model: int = 1024  # equals the encoder width in the release
    num_heads: int = 4
    ffn_dim: int = 2560
    num_layers: int = 4
    max_positions: int = 5000
    dropout: float = 0.1
    positional_dropout: float = 0.1
    attention_dropout: float = 0.0

    def validate(self) -> None:
        if self.downsample_rate != 4:
            # Upstream's other rates are broken (docs/upstream_compat.md, "Checkpoint
            # layout"); the released model and every checkpoint use 4.
            raise ValueError("only downsample_rate 4 is supported (the released architecture)")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} not divisible by num_heads {self.num_heads}")


@dataclass
class LLMConfig:
    """The Qwen2 decoder. ``path`` (an HF folder or hub id) is used when ``init`` is
    'pretrained'; with 'config' the architecture below is built with random weights (all
    weights then come from an OSUM-EChat checkpoint, as for the released models)."""

    path: str = "Qwen/Qwen2.5-3B-Instruct"
    init: str = "config"  # config | pretrained
    hidden_size: int = 2048
    num_layers: int = 36
    num_heads: int = 16
    num_kv_heads: int = 2
    intermediate_size: int = 11008
    vocab_size: int = 151936
    rope_theta: float = 1000000.0
    rms_norm_eps: float = 1.0e-6
    max_position_embeddings: int = 32768
    tie_word_embeddings: bool = True
    attn_implementation: str = "sdpa"  # sdpa | eager | flash_attention_2
    activation_checkpointing: bool = False

    def validate(self) -> None:
        if self.init not in ("config", "pretrained"):
            raise ValueError(f"llm.init must be 'config' or 'pretrained', got {self.init!r}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("hidden_size/num_heads/num_kv_heads do not divide")


@dataclass
class LoraConfig:
    """PEFT LoRA on the LLM (upstream: r 64, alpha 32, dropout 0.1, up_proj excluded)."""

    enable: bool = False
    r: int = 64
    alpha: int = 32
    dropout: float = 0.1
    targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]
    )


TRAINABLE_PARTS = ("encoder", "adapter", "llm", "lora", "speech")
LOSS_NORMS = ("token", "sample")


@dataclass
class ModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    # 4096 CosyVoice codes + the speech boundary 4096; the embedding adds two input-speech
    # markers (4097 before, 4098 after the encoder output).
    speech_token_num: int = 4097
    # The speech output head (``speech_head``): OSUM-EChat has one; OSUM (text output only) has
    # none (its checkpoints carry an unused ``speaker_head`` that loading names and ignores).
    speech_head: bool = True
    # Which parts get gradients: any of encoder, adapter, llm, lora, speech (emb + head).
    trainable: list[str] = field(default_factory=lambda: ["encoder", "adapter", "llm", "speech"])
    # Rows of the joint cross-entropy computed at once (bounds logits memory).
    loss_chunk_size: int = 1024
    # How the batch loss averages the supervised tokens: "token" (every token weighs the same,
    # as upstream) or "sample" (each example's mean token loss, averaged over examples, so a
    # one-token tag answer weighs as much as a long transcript).
    loss_norm: str = "token"
    # Weight of each speech-code target relative to a text target (1.0 = upstream's plain
    # joint mean). A spoken reply has ~5 codes per text token, so at 1.0 the codes dominate the
    # gradient of an S2S example; < 1 gives the reply text more of it. The loss stays a weighted
    # mean (divided by the summed weights), so its scale does not change with the mix.
    speech_loss_weight: float = 1.0
    # Training only: the probability with which each speech-code input (the teacher-forced
    # history of a spoken reply; not the boundary or the input markers) is replaced by another
    # code input of the same batch, drawn at random, the targets unchanged. Teacher-forced, every
    # history is right, so a model that fits its codes may fall apart after its own first wrong
    # code when it generates; wrong codes in training are meant to teach it to continue (no gain
    # in the mini recipe: docs/training.md). 0 = upstream.
    speech_input_noise: float = 0.0

    def validate(self) -> None:
        if self.loss_norm not in LOSS_NORMS:
            raise ValueError(f"loss_norm: {self.loss_norm!r}; choose from {list(LOSS_NORMS)}")
        if not self.speech_loss_weight > 0:
            raise ValueError(f"speech_loss_weight must be > 0, got {self.speech_loss_weight}")
        if not 0.0 <= self.speech_input_noise < 1.0:
            raise ValueError(f"speech_input_noise must be in [0, 1), got {self.speech_input_noise}")
        bad = [p for p in self.trainable if p not in TRAINABLE_PARTS]
        if bad:
            raise ValueError(f"trainable: unknown part(s) {bad}; choose from {list(TRAINABLE_PARTS)}")
        if "lora" in self.trainable and not self.lora.enable:
            raise ValueError("trainable lists 'lora' but lora.enable is false")
        if self.adapter.d_model != self.encoder.d_model:
            raise ValueError("adapter.d_model must equal encoder.d_model")
