"""Token2wav configuration: dataclasses plus a tolerant reader for CosyVoice's ``cosyvoice.yaml``.

The released ``cosyvoice.yaml`` is HyperPyYAML: ``!new:pkg.Class`` builds objects, ``!name:``
makes partials, ``!ref <key>`` points at another key and ``!apply:`` calls functions. We never
instantiate anything from it. :func:`load_tagged_yaml` parses it with a ``yaml.SafeLoader``
subclass that turns every ``!``-tagged node into a plain :class:`Tagged` record, resolves
simple ``!ref <key>`` references, and :func:`config_from_yaml` reads only the numbers the flow
model and the HiFT vocoder need.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Class names (the part after ``!new:``) that identify a CosyVoice v1 model.
V1_FLOW_CLASS = "MaskedDiffWithXvec"
V1_HIFT_CLASS = "HiFTGenerator"


def frames_for(n_tokens: int, token_rate: int, sample_rate: int = 22050, hop: int = 256) -> int:
    """Mel frames for ``n_tokens`` at ``token_rate`` Hz: ``int(n / rate * sr / hop)`` in double
    precision, left to right, as upstream's flow computes it. Not the exact integer floor: at
    4480, 7296, 8832, ... codes the float product rounds just below a whole number and gives
    one frame fewer, and the released model's outputs have that length."""
    return int(n_tokens / token_rate * sample_rate / hop)


@dataclass
class Tagged:
    """A YAML node that carried a ``!`` tag, e.g. ``!new:cosyvoice.flow.flow.MaskedDiffWithXvec``."""

    tag: str
    value: Any

    @property
    def class_name(self) -> str:
        """Last dotted component of the tag's target (``MaskedDiffWithXvec``)."""
        return self.tag.split(":", 1)[-1].rsplit(".", 1)[-1]


class _TagTolerantLoader(yaml.SafeLoader):
    """SafeLoader that records unknown ``!`` tags instead of failing on them."""


def _construct_tagged(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Tagged:
    tag = "!" + tag_suffix
    if isinstance(node, yaml.MappingNode):
        value: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return Tagged(tag, value)


_TagTolerantLoader.add_multi_constructor("!", _construct_tagged)

_REF = re.compile(r"^<([^<>\[\]]+)>$")


def _resolve_refs(node: Any, root: dict, depth: int = 0) -> Any:
    """Replace ``!ref <key>`` nodes by the (resolved) top-level value of ``key``."""
    if depth > 50:
        raise ValueError("cosyvoice.yaml: !ref nesting too deep (cycle?)")
    if isinstance(node, Tagged):
        if node.tag == "!ref" and isinstance(node.value, str):
            match = _REF.match(node.value.strip())
            if match and match.group(1) in root:
                return _resolve_refs(root[match.group(1)], root, depth + 1)
            return node
        return Tagged(node.tag, _resolve_refs(node.value, root, depth + 1))
    if isinstance(node, dict):
        return {k: _resolve_refs(v, root, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_refs(v, root, depth + 1) for v in node]
    return node


def load_tagged_yaml(path: str | Path) -> dict:
    """Parse a HyperPyYAML file into plain dicts/lists with :class:`Tagged` for tagged nodes."""
    with open(path, encoding="utf-8") as fh:
        tree = yaml.load(fh, Loader=_TagTolerantLoader)  # noqa: S506 (SafeLoader subclass)
    if not isinstance(tree, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return _resolve_refs(tree, tree)


@dataclass
class EncoderConfig:
    """Conformer encoder of the flow model (no conv module, rel-pos attention, linear input)."""

    input_size: int = 512
    output_size: int = 512
    attention_heads: int = 8
    linear_units: int = 2048
    num_blocks: int = 6
    activation: str = "swish"


@dataclass
class EstimatorConfig:
    """1-D U-Net velocity estimator (``ConditionalDecoder``)."""

    in_channels: int = 320
    out_channels: int = 80
    channels: tuple[int, ...] = (256, 256)
    attention_head_dim: int = 64
    n_blocks: int = 4
    num_mid_blocks: int = 12
    num_heads: int = 8


@dataclass
class FlowConfig:
    """``MaskedDiffWithXvec`` + ``InterpolateRegulator`` + ``ConditionalCFM`` numbers."""

    input_size: int = 512
    output_size: int = 80
    spk_embed_dim: int = 192
    vocab_size: int = 4096
    input_frame_rate: int = 25
    regulator_channels: int = 80
    sampling_ratios: tuple[int, ...] = (1, 1, 1, 1)
    inference_cfg_rate: float = 0.7
    t_scheduler: str = "cosine"
    n_timesteps: int = 10
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)


@dataclass
class HiFTConfig:
    """HiFT (NSF + iSTFTNet) vocoder numbers."""

    in_channels: int = 80
    base_channels: int = 512
    nb_harmonics: int = 8
    sampling_rate: int = 22050
    nsf_alpha: float = 0.1
    nsf_sigma: float = 0.003
    nsf_voiced_threshold: float = 10.0
    upsample_rates: tuple[int, ...] = (8, 8)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16)
    istft_n_fft: int = 16
    istft_hop: int = 4
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    source_resblock_kernel_sizes: tuple[int, ...] = (7, 11)
    source_resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5))
    lrelu_slope: float = 0.1
    audio_limit: float = 0.99
    f0_cond_channels: int = 512
    f0_num_class: int = 1

    @property
    def samples_per_frame(self) -> int:
        """Waveform samples per mel frame (8 * 8 * 4 = 256 for the release)."""
        total = self.istft_hop
        for rate in self.upsample_rates:
            total *= rate
        return total


@dataclass
class MelConfig:
    """Matcha-style prompt mel settings (``feat_extractor`` in cosyvoice.yaml)."""

    n_fft: int = 1024
    num_mels: int = 80
    sampling_rate: int = 22050
    hop_size: int = 256
    win_size: int = 1024
    fmin: float = 0.0
    fmax: float = 8000.0


@dataclass
class Token2WavConfig:
    """Everything token2wav needs from ``cosyvoice.yaml``."""

    sample_rate: int = 22050
    flow: FlowConfig = field(default_factory=FlowConfig)
    hift: HiFTConfig = field(default_factory=HiFTConfig)
    mel: MelConfig = field(default_factory=MelConfig)

    @property
    def token_rate(self) -> int:
        return self.flow.input_frame_rate

    def mel_frames(self, n_tokens: int) -> int:
        """Mel frames for ``n_tokens`` codes, computed as upstream does (see :func:`frames_for`)."""
        return frames_for(n_tokens, self.token_rate, self.sample_rate, self.mel.hop_size)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def release_config() -> Token2WavConfig:
    """The CosyVoice-300M-25Hz sizes (v1 reference YAML with ``input_frame_rate: 25``)."""
    return Token2WavConfig()


def tiny_config() -> Token2WavConfig:
    """Same architecture, tiny widths: for CPU tests and the benchmark."""
    return Token2WavConfig(
        flow=FlowConfig(
            input_size=32,
            encoder=EncoderConfig(input_size=32, output_size=32, attention_heads=2, linear_units=64, num_blocks=2),
            estimator=EstimatorConfig(channels=(32, 32), attention_head_dim=16, n_blocks=1, num_mid_blocks=1, num_heads=2),
        ),
        hift=HiFTConfig(base_channels=32, f0_cond_channels=32),
    )


# --------------------------------------------------------------------------- YAML -> dataclasses


def _num(value: Any, kind: type) -> Any:
    """YAML 1.1 reads ``1e-06`` as a string; coerce numbers explicitly."""
    if isinstance(value, Tagged):
        raise ValueError(f"cosyvoice.yaml: expected a number, found unresolved {value.tag} {value.value!r}")
    return kind(float(value)) if kind is int else kind(value)


def _args(node: Any, what: str) -> dict:
    if isinstance(node, Tagged):
        node = node.value
    if not isinstance(node, dict):
        raise ValueError(f"cosyvoice.yaml: '{what}' must be a mapping, found {type(node).__name__}")
    return node


def _pick(src: dict, cls: type, mapping: dict[str, str] | None = None) -> dict:
    """Take the dataclass fields of ``cls`` present in ``src`` (with optional key renames)."""
    out: dict = {}
    types = {f.name: f for f in dataclasses.fields(cls)}
    mapping = mapping or {}
    for name, f in types.items():
        key = mapping.get(name, name)
        if key not in src or isinstance(f.default_factory, type):  # nested configs are handled by callers
            continue
        default = f.default
        value = src[key]
        if isinstance(default, tuple):
            if default and isinstance(default[0], tuple):
                out[name] = tuple(tuple(int(v) for v in row) for row in value)
            else:
                out[name] = tuple(int(v) for v in value)
        elif isinstance(default, bool) or isinstance(default, str):
            out[name] = value
        elif isinstance(default, int):
            out[name] = _num(value, int)
        elif isinstance(default, float):
            out[name] = _num(value, float)
    return out


def _check_class(node: Any, expected: str, what: str) -> None:
    if isinstance(node, Tagged) and node.class_name != expected:
        raise ValueError(
            f"cosyvoice.yaml: '{what}' is {node.class_name}, expected {expected} "
            "(only the CosyVoice v1 / 300M-25Hz architecture is supported)"
        )


def config_from_yaml(path: str | Path) -> Token2WavConfig:
    """Read the numbers token2wav needs from a CosyVoice ``cosyvoice.yaml`` (no class instantiation)."""
    tree = load_tagged_yaml(path)
    for key in ("flow", "hift"):
        if key not in tree:
            raise ValueError(f"{path}: no '{key}' section")
    _check_class(tree["flow"], V1_FLOW_CLASS, "flow")
    _check_class(tree["hift"], V1_HIFT_CLASS, "hift")
    flow = _args(tree["flow"], "flow")
    enc = _args(flow.get("encoder", {}), "flow.encoder")
    reg = _args(flow.get("length_regulator", {}), "flow.length_regulator")
    dec = _args(flow.get("decoder", {}), "flow.decoder")
    cfm = _args(dec.get("cfm_params", {}), "flow.decoder.cfm_params")
    cfm = _args(cfm.get("content", cfm), "flow.decoder.cfm_params.content")
    est = _args(dec.get("estimator", {}), "flow.decoder.estimator")
    hift = _args(tree["hift"], "hift")
    f0 = _args(hift.get("f0_predictor", {}), "hift.f0_predictor")
    istft = _args(hift.get("istft_params", {"n_fft": 16, "hop_len": 4}), "hift.istft_params")
    feat = _args(tree.get("feat_extractor", {}), "feat_extractor")

    flow_cfg = FlowConfig(
        **_pick(flow, FlowConfig),
        encoder=EncoderConfig(**_pick(enc, EncoderConfig, {"activation": "activation_type"})),
        estimator=EstimatorConfig(**_pick(est, EstimatorConfig)),
    )
    if "channels" in reg:
        flow_cfg.regulator_channels = _num(reg["channels"], int)
    if "sampling_ratios" in reg:
        flow_cfg.sampling_ratios = tuple(int(v) for v in reg["sampling_ratios"])
    if "inference_cfg_rate" in cfm:
        flow_cfg.inference_cfg_rate = _num(cfm["inference_cfg_rate"], float)
    if "t_scheduler" in cfm:
        flow_cfg.t_scheduler = str(cfm["t_scheduler"])
    hift_cfg = HiFTConfig(
        **_pick(hift, HiFTConfig),
        istft_n_fft=_num(istft.get("n_fft", 16), int),
        istft_hop=_num(istft.get("hop_len", 4), int),
        f0_cond_channels=_num(f0.get("cond_channels", 512), int),
        f0_num_class=_num(f0.get("num_class", 1), int),
    )
    mel_cfg = MelConfig(**_pick(feat, MelConfig))
    sample_rate = _num(tree.get("sample_rate", hift_cfg.sampling_rate), int)
    cfg = Token2WavConfig(sample_rate=sample_rate, flow=flow_cfg, hift=hift_cfg, mel=mel_cfg)
    validate(cfg)
    return cfg


def validate(cfg: Token2WavConfig) -> None:
    """Fail early, naming the problem, on inconsistent sizes."""
    f, h = cfg.flow, cfg.hift
    if f.encoder.output_size % f.encoder.attention_heads:
        raise ValueError("flow.encoder.output_size must be divisible by attention_heads")
    if f.estimator.in_channels != 4 * f.output_size:
        raise ValueError(f"estimator.in_channels {f.estimator.in_channels} != 4 * output_size {f.output_size}")
    if h.in_channels != f.output_size or cfg.mel.num_mels != f.output_size:
        raise ValueError("hift.in_channels, feat_extractor.num_mels and flow.output_size must agree")
    if h.samples_per_frame != cfg.mel.hop_size:
        raise ValueError(f"HiFT upsamples by {h.samples_per_frame}, but the mel hop is {cfg.mel.hop_size}")
    if cfg.sample_rate != h.sampling_rate:
        raise ValueError(f"sample_rate {cfg.sample_rate} != hift.sampling_rate {h.sampling_rate}")
    if f.t_scheduler not in ("cosine", "linear"):
        raise ValueError(f"unsupported t_scheduler {f.t_scheduler!r}")
