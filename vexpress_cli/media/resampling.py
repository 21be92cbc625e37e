"""The windowed-sinc resampler of ``torchaudio.functional.resample``, whole or streamed in pieces.

The original V-Express resampled speech to 16 kHz with torchaudio; these are its numbers (to float32
rounding) without torchaudio. The filter bank has ``n`` phases of about ``o`` taps for rates reduced
by their gcd to ``o -> n``: small for the standard rates (44.1 kHz -> 16 kHz is 160 x 475 taps) and huge
for rates sharing few factors with 16 kHz (44101 Hz -> 16 kHz: 16000 x 44135 taps, 5.6 GB), which
:func:`filter_fits` tells apart.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

# The most taps a filter bank may have (32 MB in float64); the standard rates need at most 300,000.
MAX_FILTER_TAPS = 1 << 22


def filter_fits(orig_freq: int, new_freq: int, lowpass_filter_width: int = 6, rolloff: float = 0.99) -> bool:
    """Whether resampling ``orig_freq`` to ``new_freq`` needs at most MAX_FILTER_TAPS filter taps."""
    orig, new = _reduced_rates(orig_freq, new_freq)
    return orig_freq == new_freq or _filter_taps(orig, new, lowpass_filter_width, rolloff) <= MAX_FILTER_TAPS


def _reduced_rates(orig_freq: int, new_freq: int) -> tuple[int, int]:
    """The two rates divided by their gcd (44100, 16000 -> 441, 160); ValueError unless both are positive."""
    if orig_freq <= 0 or new_freq <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_freq} and {new_freq}")
    gcd = math.gcd(int(orig_freq), int(new_freq))
    return int(orig_freq) // gcd, int(new_freq) // gcd


def _filter_width(orig: int, new: int, lowpass_filter_width: int, rolloff: float) -> int:
    """Input samples each filter spans on either side (step 2 of :func:`resample`)."""
    return math.ceil(lowpass_filter_width * orig / (min(orig, new) * rolloff))


def _filter_taps(orig: int, new: int, lowpass_filter_width: int, rolloff: float) -> int:
    """The size of the ``[new, 1, 2*width + orig]`` filter bank of reduced rates ``orig -> new``."""
    return new * (2 * _filter_width(orig, new, lowpass_filter_width, rolloff) + orig)


def resample(
    waveform: torch.Tensor,
    orig_freq: int,
    new_freq: int,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
) -> torch.Tensor:
    """Band-limited resampling of ``waveform`` (shape ``[..., time]``) from ``orig_freq`` to ``new_freq``.

    Same algorithm and defaults as ``torchaudio.functional.resample`` with
    ``resampling_method="sinc_interp_hann"``:

    1. Reduce the rates by their gcd: ``o = orig/g``, ``n = new/g`` (44100->16000
       becomes 441->160). The output repeats every ``o`` input samples with
       ``n`` distinct phases, so ``n`` filters cover every output sample.
    2. Cut-off ``base = min(o, n) * rolloff`` (in the reduced units), i.e. just
       below the lower of the two Nyquist frequencies. Each filter spans
       ``lowpass_filter_width`` zero crossings of the sinc on each side, which
       is ``width = ceil(lowpass_filter_width * o / base)`` input samples.
    3. Filter ``p`` (output phase ``p/n``) at input offset ``i`` in
       ``[-width, width + o)`` is ``sinc(pi*t) * cos(pi*t / (2*L))**2 * base/o``
       with ``t = base * (i/o - p/n)`` clamped to ``[-L, L]`` (L =
       ``lowpass_filter_width``) -- a Hann-windowed sinc that is zero outside.
    4. Zero-pad the signal by ``width`` on the left and ``width + o`` on the
       right, run one strided ``conv1d`` (stride ``o``, ``n`` output channels),
       interleave the channels, and keep ``ceil(len * new / orig)`` samples.

    The filters are computed in float64 and cast to the signal's dtype. Equal
    rates return the input unchanged.
    """
    orig, new = _reduced_rates(orig_freq, new_freq)
    if orig_freq == new_freq:
        return waveform
    kernel, width = _sinc_kernel(orig, new, lowpass_filter_width, float(rolloff))
    kernel = kernel.to(device=waveform.device, dtype=waveform.dtype)

    shape = waveform.shape
    length = shape[-1]
    flat = waveform.reshape(-1, 1, length)
    padded = torch.nn.functional.pad(flat, (width, width + orig))
    interleaved = _polyphase(padded, kernel, orig)
    target_length = -(-new * length // orig)  # ceil without float rounding
    return interleaved[:, :target_length].reshape(*shape[:-1], target_length)


def _polyphase(padded: torch.Tensor, kernel: torch.Tensor, orig: int) -> torch.Tensor:
    """Step 4 of :func:`resample`: ``[batch, 1, time]`` (padded) to ``[batch, samples]`` at the new rate."""
    phases = torch.nn.functional.conv1d(padded, kernel, stride=orig)  # [batch, n, blocks]
    return phases.transpose(1, 2).reshape(padded.shape[0], -1)


class StreamingResampler:
    """:func:`resample` for a 1-D CPU signal that arrives in pieces, with the same filter.

    :meth:`push` returns the output samples whose inputs have all arrived (in steps of at most about
    ``2**20`` input and output samples); :meth:`finish` the rest. Concatenated, they equal ``resample`` of
    the whole signal up to float rounding (~1e-7: the convolution runs over other lengths),
    whatever the pieces, while only one step of input is held back. Every convolution has
    the same length, so the CPU backend (oneDNN) builds its kernel once, not once per piece;
    the pieces wait in numpy, so no parallel torch operation runs per piece.
    """

    STEP_INPUT = 1 << 20  # input (and output) samples per convolution, at most about

    def __init__(self, orig_freq: int, new_freq: int, lowpass_filter_width: int = 6, rolloff: float = 0.99):
        self.orig, self.new = _reduced_rates(orig_freq, new_freq)
        self.identity = orig_freq == new_freq
        self.kernel, self.width = _sinc_kernel(self.orig, self.new, lowpass_filter_width, float(rolloff))
        # Input consumed per convolution: whole blocks of `orig` inputs, each giving `new` outputs, about
        # STEP_INPUT of each at most (1 Hz -> 16 kHz gives 16000 outputs per input sample).
        self.step = max(1, self.STEP_INPUT // max(self.orig, self.new)) * self.orig
        self.window = self.step + 2 * self.width  # input one convolution reads
        self.pieces: list[np.ndarray] = []  # input not consumed yet, the left zero padding first
        self.buffered = 0
        self.consumed = 0  # input samples pushed
        self.produced = 0  # output samples returned

    def push(self, piece: torch.Tensor) -> torch.Tensor:
        self.consumed += piece.shape[-1]
        if self.identity:
            return piece
        if not self.pieces:
            self.dtype = piece.dtype
            self._append(np.zeros(self.width, piece.numpy().dtype))
        self._append(piece.numpy())
        return self._convolve()

    def finish(self) -> torch.Tensor:
        if self.identity or not self.pieces:
            return torch.zeros(0)
        target_length = -(-self.new * self.consumed // self.orig)  # as resample: ceil(n * new / orig)
        zeros = functools.partial(np.zeros, dtype=self.pieces[0].dtype)
        self._append(zeros(self.width + self.orig))  # the right padding
        outputs = [self._convolve()]
        if self.produced < target_length:  # the last, partial step: padded with zeros to full length
            self._append(zeros(self.window - self.buffered))
            outputs.append(self._convolve())
        out = torch.cat(outputs)
        return out[: max(target_length - (self.produced - len(out)), 0)]

    def _append(self, piece: np.ndarray) -> None:
        self.pieces.append(piece)
        self.buffered += len(piece)

    def _convolve(self) -> torch.Tensor:
        """Every full step of output the buffered input allows."""
        if self.buffered < self.window:
            return torch.zeros(0, dtype=self.dtype)
        pending = np.concatenate(self.pieces)
        kernel = self.kernel.to(dtype=self.dtype)
        outputs = []
        while len(pending) >= self.window:
            window = torch.from_numpy(pending[: self.window])
            outputs.append(_polyphase(window.view(1, 1, -1), kernel, self.orig)[0])
            pending = pending[self.step :]
        self.pieces, self.buffered = [pending], len(pending)
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        self.produced += len(out)
        return out


@functools.lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int, lowpass_filter_width: int, rolloff: float) -> tuple[torch.Tensor, int]:
    """The ``[new, 1, 2*width + orig]`` polyphase filter bank described in :func:`resample`; ValueError when it
    would hold more than MAX_FILTER_TAPS taps (gigabytes, for rates sharing few factors)."""
    base = min(orig, new) * rolloff
    width = _filter_width(orig, new, lowpass_filter_width, rolloff)
    taps = _filter_taps(orig, new, lowpass_filter_width, rolloff)
    if taps > MAX_FILTER_TAPS:
        raise ValueError(f"resampling {orig}:{new} (the rates divided by their gcd) needs {taps:,} filter taps, "
                         f"more than {MAX_FILTER_TAPS:,}; resample such a rate with ffmpeg (-ar)")
    offsets = torch.arange(-width, width + orig, dtype=torch.float64) / orig
    phases = torch.arange(new, dtype=torch.float64)[:, None] / new
    t = ((offsets[None, :] - phases) * base).clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * (math.pi / (2 * lowpass_filter_width))) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    return (sinc * window * (base / orig))[:, None, :], width
