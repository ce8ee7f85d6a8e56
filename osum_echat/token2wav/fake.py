"""A tiny fake CosyVoice-300M-25Hz folder for tests (no download, seconds on a CPU).

``make_fake_cosyvoice_dir(path)`` writes:

- ``cosyvoice.yaml``: the HyperPyYAML structure of the release (``!new:`` / ``!name:`` /
  ``!ref`` / ``!apply:`` tags, the same keys) with tiny sizes;
- ``flow.pt`` and ``hift.pt``: random weights in the released key layout (``hift.pt`` with old
  ``weight_g``/``weight_v`` weight-norm keys);
- ``campplus.onnx``: fbank ``(1, T, 80)`` -> mean over time -> fixed projection -> ``(1, 192)``;
- ``speech_tokenizer_v1.onnx``: feats ``(1, 128, T)`` + length -> every 4th frame's summed
  magnitude, scaled, mod 4096 -> int64 codes ``(1, ceil(T / 4))`` (25 Hz from 100 Hz frames).

The ONNX graphs are built with ``onnx.helper``; they are stand-ins with the right interfaces,
not models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from osum_echat.token2wav.config import Token2WavConfig, tiny_config
from osum_echat.token2wav.flow import FlowModel
from osum_echat.token2wav.hift import HiFTGenerator
from osum_echat.token2wav.weights import to_old_weight_norm

ONNX_OPSET = 13


def _list(values) -> str:
    return "[" + ", ".join(_list(v) if isinstance(v, (list, tuple)) else str(v) for v in values) + "]"


def render_yaml(cfg: Token2WavConfig) -> str:
    """cosyvoice.yaml text with the release's structure and ``cfg``'s numbers."""
    f, e, d, h, m = cfg.flow, cfg.flow.encoder, cfg.flow.estimator, cfg.hift, cfg.mel
    return f"""# fake CosyVoice-300M-25Hz config written by osum_echat.token2wav.fake (tiny sizes)
__set_seed1: !apply:random.seed [1986]
__set_seed3: !apply:torch.manual_seed [1986]

sample_rate: {cfg.sample_rate}
spk_embed_dim: {f.spk_embed_dim}

flow: !new:cosyvoice.flow.flow.MaskedDiffWithXvec
    input_size: {f.input_size}
    output_size: {f.output_size}
    spk_embed_dim: !ref <spk_embed_dim>
    output_type: 'mel'
    vocab_size: {f.vocab_size}
    input_frame_rate: {f.input_frame_rate}
    only_mask_loss: True
    encoder: !new:cosyvoice.transformer.encoder.ConformerEncoder
        output_size: {e.output_size}
        attention_heads: {e.attention_heads}
        linear_units: {e.linear_units}
        num_blocks: {e.num_blocks}
        dropout_rate: 0.1
        positional_dropout_rate: 0.1
        attention_dropout_rate: 0.1
        normalize_before: True
        input_layer: 'linear'
        pos_enc_layer_type: 'rel_pos_espnet'
        selfattention_layer_type: 'rel_selfattn'
        input_size: {e.input_size}
        use_cnn_module: False
        macaron_style: False
    length_regulator: !new:cosyvoice.flow.length_regulator.InterpolateRegulator
        channels: {f.regulator_channels}
        sampling_ratios: {_list(f.sampling_ratios)}
    decoder: !new:cosyvoice.flow.flow_matching.ConditionalCFM
        in_channels: 240
        n_spks: 1
        spk_emb_dim: 80
        cfm_params: !new:omegaconf.DictConfig
            content:
                sigma_min: 1e-06
                solver: 'euler'
                t_scheduler: '{f.t_scheduler}'
                training_cfg_rate: 0.2
                inference_cfg_rate: {f.inference_cfg_rate}
                reg_loss_type: 'l1'
        estimator: !new:cosyvoice.flow.decoder.ConditionalDecoder
            in_channels: {d.in_channels}
            out_channels: {d.out_channels}
            channels: {_list(d.channels)}
            dropout: 0
            attention_head_dim: {d.attention_head_dim}
            n_blocks: {d.n_blocks}
            num_mid_blocks: {d.num_mid_blocks}
            num_heads: {d.num_heads}
            act_fn: 'gelu'

hift: !new:cosyvoice.hifigan.generator.HiFTGenerator
    in_channels: {h.in_channels}
    base_channels: {h.base_channels}
    nb_harmonics: {h.nb_harmonics}
    sampling_rate: !ref <sample_rate>
    nsf_alpha: {h.nsf_alpha}
    nsf_sigma: {h.nsf_sigma}
    nsf_voiced_threshold: {h.nsf_voiced_threshold}
    upsample_rates: {_list(h.upsample_rates)}
    upsample_kernel_sizes: {_list(h.upsample_kernel_sizes)}
    istft_params:
        n_fft: {h.istft_n_fft}
        hop_len: {h.istft_hop}
    resblock_kernel_sizes: {_list(h.resblock_kernel_sizes)}
    resblock_dilation_sizes: {_list(h.resblock_dilation_sizes)}
    source_resblock_kernel_sizes: {_list(h.source_resblock_kernel_sizes)}
    source_resblock_dilation_sizes: {_list(h.source_resblock_dilation_sizes)}
    lrelu_slope: {h.lrelu_slope}
    audio_limit: {h.audio_limit}
    f0_predictor: !new:cosyvoice.hifigan.f0_predictor.ConvRNNF0Predictor
        num_class: {h.f0_num_class}
        in_channels: {h.in_channels}
        cond_channels: {h.f0_cond_channels}

get_tokenizer: !name:whisper.tokenizer.get_tokenizer
    multilingual: True
    num_languages: 100
feat_extractor: !name:matcha.utils.audio.mel_spectrogram
    n_fft: {m.n_fft}
    num_mels: {m.num_mels}
    sampling_rate: !ref <sample_rate>
    hop_size: {m.hop_size}
    win_size: {m.win_size}
    fmin: {int(m.fmin)}
    fmax: {int(m.fmax)}
    center: False
data_pipeline: [
    !ref <get_tokenizer>,
]
"""


def make_campplus_onnx(path: str | Path, dim: int = 192, seed: int = 0) -> None:
    """Fake CAM++: ``(1, T, 80)`` fbank -> ``(1, dim)`` (time mean times a fixed matrix)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.RandomState(seed).randn(80, dim).astype(np.float32) * 0.1
    nodes = [
        helper.make_node("Mul", ["x", "x"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["m"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fake_campplus",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", 80])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, dim])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def make_tokenizer_onnx(path: str | Path, n_mels: int = 128, vocab: int = 4096, stride: int = 4) -> None:
    """Fake S3 tokenizer: ``(1, n_mels, T)`` + ``(1,)`` int32 -> ``(1, ceil(T / stride))`` int64 codes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, values, dtype) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)

    nodes = [
        helper.make_node("Slice", ["feats", "s_start", "s_end", "s_axes", "s_step"], ["picked"]),
        helper.make_node("ReduceSum", ["picked", "r_axes"], ["summed"], keepdims=0),
        helper.make_node("Abs", ["summed"], ["mag"]),
        helper.make_node("Mul", ["mag", "scale"], ["scaled"]),
        helper.make_node("Cast", ["scaled"], ["as_int"], to=TensorProto.INT64),
        helper.make_node("Mod", ["as_int", "vocab"], ["codes"]),
    ]
    inits = [
        const("s_start", [0], np.int64),
        const("s_end", [2**62], np.int64),
        const("s_axes", [2], np.int64),
        const("s_step", [stride], np.int64),
        const("r_axes", [1], np.int64),
        const("scale", 97.0, np.float32),
        const("vocab", vocab, np.int64),
    ]
    graph = helper.make_graph(
        nodes,
        "fake_s3_tokenizer",
        [
            helper.make_tensor_value_info("feats", TensorProto.FLOAT, [1, n_mels, "T"]),
            helper.make_tensor_value_info("feats_length", TensorProto.INT32, [1]),
        ],
        [helper.make_tensor_value_info("codes", TensorProto.INT64, [1, "N"])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def make_fake_cosyvoice_dir(
    path: str | Path, cfg: Token2WavConfig | None = None, seed: int = 0, onnx: bool = True
) -> Path:
    """Write a complete tiny CosyVoice folder at ``path`` and return it."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    cfg = cfg or tiny_config()
    (root / "cosyvoice.yaml").write_text(render_yaml(cfg), encoding="utf-8")
    torch.manual_seed(seed)
    flow, hift = FlowModel(cfg.flow), HiFTGenerator(cfg.hift)
    torch.save(flow.state_dict(), root / "flow.pt")
    torch.save(to_old_weight_norm(hift.state_dict()), root / "hift.pt")
    if onnx:
        make_campplus_onnx(root / "campplus.onnx", cfg.flow.spk_embed_dim, seed)
        make_tokenizer_onnx(root / "speech_tokenizer_v1.onnx", vocab=cfg.flow.vocab_size)
    return root
