"""Offline demo models: a tiny StyleGAN2 and CLIP-compatible encoders, built from seeds in milliseconds.

`colour_oracle()` is an analytic CLIP stand-in whose embeddings are about colour only: an image's
embedding comes from its mean colour, a prompt's from the colour words in it ("red", "blue", ...).
Adapting "a red image" -> "a blue image" with it must turn a generator's outputs blue, so it tests the
sign and wiring of the whole loop, and lets `nada-tui --demo` train with no weights and no network.
These are demo models: nothing they produce says anything about real CLIP guidance.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from engine.clip_loss import CLIP_MEAN, CLIP_STD, ClipEncoder, _clip_module, _tokenizer
from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID
from engine.official_models import DEMO_SG3_ID
from engine.stylegan2 import Generator, GeneratorConfig
from engine.stylegan3 import StyleGAN3Generator, tiny_stylegan3

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "cyan": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "purple": (0.5, 0.0, 0.5),
    "orange": (1.0, 0.5, 0.0),
    "pink": (1.0, 0.6, 0.8),
    "white": (1.0, 1.0, 1.0),
    "black": (0.0, 0.0, 0.0),
    "gray": (0.5, 0.5, 0.5),
    "grey": (0.5, 0.5, 0.5),
}


def tiny_generator_config(size: int = 32, style_dim: int = 32, width: int = 32) -> GeneratorConfig:
    channels = {2**r: width for r in range(2, size.bit_length())}
    return GeneratorConfig(size=size, style_dim=style_dim, n_mlp=2, channel_multiplier=0, channels=channels)


def tiny_generator(size: int = 32, seed: int = 0, style_dim: int = 32, width: int = 32) -> Generator:
    """A randomly initialised StyleGAN2 small enough that a training step takes tens of ms on a CPU."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = Generator(tiny_generator_config(size, style_dim, width))
    g.set_latent_avg(None, samples=1024, seed=seed)
    return g.eval()


def demo_generator() -> Generator:
    """The `--demo` generator: 64 px so that previews show something, still fast on a laptop CPU."""
    return tiny_generator(size=64, seed=7, style_dim=32, width=32)  # seed 7: reddish, so red -> blue shows


def demo_sg3_generator() -> StyleGAN3Generator:
    """`--model demo-sg3`: a tiny random StyleGAN3-T (4 layers, margin 2), 32 px."""
    return tiny_stylegan3("t", size=32, seed=7)


DEMO_GENERATORS = {DEMO_GENERATOR_ID: demo_generator, DEMO_SG3_ID: demo_sg3_generator}


@functools.cache
def _colour_token_table() -> dict[int, tuple[float, float, float]]:
    enc = _tokenizer().encoder
    return {enc[f"{name}</w>"]: rgb for name, rgb in COLOURS.items() if f"{name}</w>" in enc}


def _colour_features(rgb: Tensor) -> Tensor:
    """[N, 3] colours in [0, 1] -> [N, 5]: chroma (x4, so hue dominates), brightness, a constant."""
    mean = rgb.mean(-1, keepdim=True)
    return torch.cat([4 * (rgb - mean), mean - 0.5, torch.full_like(mean, 0.25)], dim=-1)


class ColourOracle(nn.Module):
    """CLIP-compatible: encode_image(normalised images), encode_text(token ids) -> 5-d embeddings."""

    def __init__(self, input_resolution: int = 32) -> None:
        super().__init__()
        self.visual = nn.Module()
        self.visual.input_resolution = input_resolution
        # One frozen parameter so encoders can read the model's device and dtype.
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def encode_image(self, images: Tensor) -> Tensor:
        rgb = (images * self.std + self.mean).clamp(0, 1).mean(dim=(2, 3))
        return _colour_features(rgb) + self.anchor

    def encode_text(self, tokens: Tensor) -> Tensor:
        table = _colour_token_table()
        rows = []
        for seq in tokens.tolist():
            found = [table[t] for t in seq if t in table]
            rgb = torch.tensor(found).mean(0) if found else torch.full((3,), 0.5)
            rows.append(rgb)
        return _colour_features(torch.stack(rows).to(self.anchor.device)) + self.anchor


def colour_oracle(input_resolution: int = 32) -> ClipEncoder:
    return ClipEncoder(ColourOracle(input_resolution), DEMO_CLIP_ID)


def tiny_clip(seed: int = 0, image_resolution: int = 32, name: str = "tiny-clip") -> ClipEncoder:
    """A real `clip.model.CLIP` with random weights and small widths (text heads = width // 64)."""
    clip = _clip_module()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = clip.model.CLIP(64, image_resolution, 2, 64, 16, 77, 49408, 64, 1, 2)
    return ClipEncoder(model.float(), name)
