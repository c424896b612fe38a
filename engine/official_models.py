"""The official files nada-tui knows: generators (NVIDIA's StyleGAN2, stylegan2-ada and StyleGAN3 pickles) and CLIP
weights, with their URLs, resolutions and domain prompts. Data only; `zoo` downloads, converts and caches.
Torch-free."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from engine.config import DEMO_CLIP_ID, DEMO_GENERATOR_ID, DEMO_SOURCE
from engine.registry import DEMO_GENERATOR

TF_BASE = "https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/"
ADA_BASE = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/"
SG3_BASE = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
CLIP_BASE = "https://openaipublic.azureedge.net/clip/models/"
DEMO_SG3_ID = "demo-sg3"


@dataclass(frozen=True)
class GeneratorEntry:
    name: str
    description: str
    resolution: int
    url: str
    size_bytes: int | None
    sha256: str | None
    source_prompt: str
    format: str  # "nvidia-tf-pkl", "nvidia-ada-pkl", "nvidia-sg3-pkl", "rosinality-pt" or "demo"
    demo: bool = False
    # Trained on human faces cropped as FFHQ was: photos are aligned the same way before inversion.
    aligned_faces: bool = False

    @property
    def filename(self) -> str:
        return urllib.parse.urlsplit(self.url).path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ClipEntry:
    name: str
    url: str
    sha256: str | None
    demo: bool = False

    @property
    def filename(self) -> str:
        return urllib.parse.urlsplit(self.url).path.rsplit("/", 1)[-1]


def _tf(name: str, dataset: str, res: int, prompt: str, desc: str, faces: bool = False) -> GeneratorEntry:
    url = f"{TF_BASE}stylegan2-{dataset}-config-f.pkl"
    return GeneratorEntry(name, desc, res, url, None, None, prompt, "nvidia-tf-pkl", aligned_faces=faces)


def _ada(name: str, file: str, res: int, prompt: str, desc: str, faces: bool = False) -> GeneratorEntry:
    url = f"{ADA_BASE}{file}.pkl"
    return GeneratorEntry(name, desc, res, url, None, None, prompt, "nvidia-ada-pkl", aligned_faces=faces)


def _sg3(kind: str, dataset: str, res: int, prompt: str, desc: str) -> list[GeneratorEntry]:
    """StyleGAN3 config t (translation equivariant) and r (rotation too): one file each."""
    name = f"sg3-{kind}-{dataset}" + ("" if res >= 512 else f"-{res}")
    what = {"t": "StyleGAN3-T", "r": "StyleGAN3-R"}[kind]
    url = f"{SG3_BASE}stylegan3-{kind}-{dataset}-{res}x{res}.pkl"
    return [GeneratorEntry(name, f"{desc} ({what})", res, url, None, None, prompt, "nvidia-sg3-pkl")]


_SG3_FILES = [
    ("ffhq", 1024, "a photo of a person", "FFHQ human faces, aligned"),
    ("ffhqu", 1024, "a photo of a person", "FFHQ-U human faces, unaligned"),
    ("ffhqu", 256, "a photo of a person", "FFHQ-U human faces, unaligned, 256 px"),
    ("metfaces", 1024, "a painting of a person", "MetFaces portrait art faces, aligned"),
    ("metfacesu", 1024, "a painting of a person", "MetFaces-U portrait art faces, unaligned"),
    ("afhqv2", 512, "a photo of an animal", "AFHQv2 cat, dog and wild animal faces"),
]

GENERATORS: dict[str, GeneratorEntry] = {
    e.name: e
    for e in [
        GeneratorEntry(
            DEMO_GENERATOR_ID,
            DEMO_GENERATOR.description,
            DEMO_GENERATOR.resolution,
            "",
            None,
            None,
            DEMO_SOURCE,
            "demo",
            True,
        ),
        _tf(
            "ffhq",
            "ffhq",
            1024,
            "a photo of a person",
            "FFHQ human faces (StyleGAN2 config-f, the model StyleGAN-NADA used)",
            faces=True,
        ),
        _ada("afhqdog", "afhqdog", 512, "a photo of a dog", "AFHQ dog faces (stylegan2-ada-pytorch)"),
        _ada("afhqcat", "afhqcat", 512, "a photo of a cat", "AFHQ cat faces (stylegan2-ada-pytorch)"),
        _ada(
            "afhqwild",
            "afhqwild",
            512,
            "a photo of a wild animal",
            "AFHQ wild animal faces (stylegan2-ada-pytorch)",
        ),
        _ada(
            "metfaces",
            "metfaces",
            1024,
            "a painting of a person",
            "MetFaces portrait art faces (stylegan2-ada-pytorch)",
            faces=True,
        ),
        _tf("church", "church", 256, "a photo of a church", "LSUN churches, outdoor (StyleGAN2 config-f)"),
        _tf("car", "car", 512, "a photo of a car", "LSUN cars, 512x384 content (StyleGAN2 config-f)"),
        _tf("cat", "cat", 256, "a photo of a cat", "LSUN cats (StyleGAN2 config-f)"),
        _tf("horse", "horse", 256, "a photo of a horse", "LSUN horses (StyleGAN2 config-f)"),
        _ada("ffhq-ada", "ffhq", 1024, "a photo of a person", "FFHQ human faces (stylegan2-ada-pytorch)", True),
        _ada(
            "brecahad",
            "brecahad",
            512,
            "a microscope image of breast tissue",
            "BreCaHAD histopathology (stylegan2-ada-pytorch)",
        ),
        *(e for kind in "tr" for row in _SG3_FILES for e in _sg3(kind, *row)),
        GeneratorEntry(DEMO_SG3_ID, "DEMO: tiny random 32 px StyleGAN3-T generator, offline", 32, "", None, None,
                       DEMO_SOURCE, "demo", True),
    ]
}


def _clip(name: str, file: str, sha: str) -> ClipEntry:
    # Same URLs as openai-clip's clip._MODELS: the second-to-last path segment is the file's sha256.
    return ClipEntry(name, f"{CLIP_BASE}{sha}/{file}", sha)


CLIP_MODELS: dict[str, ClipEntry] = {
    e.name: e
    for e in [
        ClipEntry(DEMO_CLIP_ID, "", None, True),
        _clip("ViT-B/32", "ViT-B-32.pt", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"),
        _clip("ViT-B/16", "ViT-B-16.pt", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"),
    ]
}

