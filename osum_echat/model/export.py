"""Export to / import from a Hugging Face style folder: ``model.safetensors`` (flat released key
names, the tied head stored once) + ``config.json`` (the model config) + ``osum_echat.yaml``."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from osum_echat.model.checkpoint import TIED_HEAD, load_state_dict_strict
from osum_echat.model.config import ModelConfig


def export_hf(model: torch.nn.Module, cfg: ModelConfig, out_dir: str | Path) -> Path:
    from safetensors.torch import save_file

    from osum_echat.config import to_dict

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if cfg.llm.tie_word_embeddings:
        sd.pop(TIED_HEAD, None)  # shares storage with embed_tokens; safetensors stores it once
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt", "layout": "osum_echat"})
    meta = {"architectures": ["OsumEChat"], "model_type": "osum_echat", "osum_echat": to_dict(cfg)}
    (out / "config.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    return out


def load_hf_export(folder: str | Path, apply_trainable: bool = False):
    """Rebuild the model from an exported folder -> (model, ModelConfig)."""
    from safetensors.torch import load_file

    from osum_echat.config import from_dict
    from osum_echat.model.build import build_model

    folder = Path(folder)
    meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if meta.get("model_type") != "osum_echat":
        raise ValueError(f"{folder} is not an osum_echat export (model_type {meta.get('model_type')!r})")
    cfg = from_dict(ModelConfig, meta["osum_echat"], "model")
    model = build_model(cfg, apply_trainable=apply_trainable)
    load_state_dict_strict(model, load_file(str(folder / "model.safetensors")), source=str(folder))
    return model, cfg
