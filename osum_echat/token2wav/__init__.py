"""Token2wav: 25 Hz speech codes -> 22.05 kHz audio with a CosyVoice-300M-25Hz folder (flow + HiFT).

See docs/token2wav.md. Main entry points: :class:`Token2Wav`, :class:`Voice`, :class:`StreamConfig`,
:func:`make_fake_cosyvoice_dir` (tests).
"""

from osum_echat.token2wav.fake import make_fake_cosyvoice_dir
from osum_echat.token2wav.frontend import Voice
from osum_echat.token2wav.model import Token2Wav
from osum_echat.token2wav.streaming import StreamConfig

__all__ = ["StreamConfig", "Token2Wav", "Voice", "make_fake_cosyvoice_dir"]
