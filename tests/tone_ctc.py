"""A deterministic stand-in for a CTC model: each character of the vocabulary is a pure tone, so
a transcript can be "spoken" as tones and every frame's correct label is known. It has Hubert's
frame geometry (400-sample frames, 320-sample hop), which is all chunking depends on."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from transformers.modeling_outputs import CausalLMOutput

RATE = 16_000
FRAME = 400
HOP = 320


def char_hz(token_id: int) -> float:
    return 400.0 + 160.0 * token_id  # 40 Hz FFT bins at 400 samples: tones never share a bin


class ToneCTC(torch.nn.Module):
    def __init__(self, vocab_size: int):
        super().__init__()
        self.config = SimpleNamespace(conv_stride=(5, 2, 2, 2, 2, 2, 2), vocab_size=vocab_size)
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # so .parameters() finds a device
        self.calls: list[tuple[int, ...]] = []

    def _get_feat_extract_output_lengths(self, lengths):
        lengths = torch.as_tensor(lengths)
        return torch.clamp((lengths - FRAME) // HOP + 1, min=0)

    def forward(self, input_values, attention_mask=None):
        self.calls.append(tuple(input_values.shape))
        x = input_values.detach().cpu().numpy()
        frames = max(0, (x.shape[1] - FRAME) // HOP + 1)
        logits = np.full((x.shape[0], frames, self.config.vocab_size), -10.0, np.float32)
        freqs = np.fft.rfftfreq(FRAME, 1 / RATE)
        targets = [int(np.argmin(np.abs(freqs - char_hz(t)))) for t in range(self.config.vocab_size)]
        for b in range(x.shape[0]):
            for f in range(frames):
                spectrum = np.abs(np.fft.rfft(x[b, f * HOP : f * HOP + FRAME]))
                energy = spectrum[targets]
                energy[0] = 0.0
                best = int(energy.argmax())
                # Blank (id 0) where the frame holds no tone: silence or a normalised constant.
                logits[b, f, best if energy[best] > 0.25 * spectrum.sum() + 1e-3 else 0] = 10.0
        return CausalLMOutput(logits=torch.from_numpy(logits))


def speak_as_tones(text: str, tokenizer, char_s: float = 0.1, gap_s: float = 0.04) -> np.ndarray:
    """Each character (| for spaces) as a tone, with a short silence after it."""
    ids = tokenizer(text).input_ids
    pieces = []
    for token_id in ids:
        t = np.arange(int(char_s * RATE)) / RATE
        pieces += [0.5 * np.sin(2 * np.pi * char_hz(token_id) * t), np.zeros(int(gap_s * RATE))]
    return np.concatenate(pieces).astype(np.float32)
