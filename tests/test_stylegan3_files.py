"""StyleGAN3 snapshot pickles: what is read from the stored state, what is refused, and the registry rows."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _sg3_fakes import random_sg3, write_sg3_pickle

from engine import zoo
from engine.errors import CheckpointError
from engine.generator_files import load_generator
from engine.official_models import GENERATORS


def test_plain_attributes_come_from_the_file_not_from_defaults(tmp_path):
    model = random_sg3("r", seed=8, conv_clamp=None)
    cfg = model["config"]
    odd = dataclasses.replace(cfg, output_scale=0.5, margin_size=2)
    path = write_sg3_pickle(tmp_path / "odd.pkl", {**model, "config": odd})
    g, info = load_generator(path)
    assert g.config == odd  # names, sizes, factors, paddings, filter shapes, clamp (None here), output scale
    assert info["family"] == "stylegan3-r" and info["format"] == "nvidia-sg3-pkl"
    assert all(s.conv_clamp is None for s in g.config.layers)
    assert len(g.config.layers[0].down_filter_shape) == 2  # the r config's radial down filter
    assert torch.equal(g.latent_avg, model["tensors"]["mapping.w_avg"])


def test_conditional_stylegan3_is_refused_with_a_clear_message(tmp_path):
    path = write_sg3_pickle(tmp_path / "cond.pkl", random_sg3("t", seed=9), c_dim=10)
    with pytest.raises(CheckpointError, match=r"class-conditional StyleGAN3 generator \(c_dim=10\).*unconditional"):
        load_generator(path)


def test_a_file_whose_layers_lack_a_stored_attribute_is_refused(tmp_path):
    model = random_sg3("t", seed=10)
    bad = dataclasses.replace(model["config"], layers=model["config"].layers)
    path = write_sg3_pickle(tmp_path / "bad.pkl", {**model, "config": bad})
    raw = path.read_bytes().replace(b"up_factor", b"up_fuctor")
    path.write_bytes(raw)
    with pytest.raises(CheckpointError, match="has no 'up_factor' attribute"):
        load_generator(path)


def test_the_twelve_official_stylegan3_files_are_in_the_registry():
    sg3 = {n: e for n, e in GENERATORS.items() if e.format == "nvidia-sg3-pkl"}
    assert len(sg3) == 12
    base = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
    assert sg3["sg3-t-ffhq"].url == base + "stylegan3-t-ffhq-1024x1024.pkl"
    assert sg3["sg3-r-afhqv2"].resolution == 512 and sg3["sg3-r-ffhqu-256"].resolution == 256
    assert sg3["sg3-t-metfacesu"].source_prompt == "a painting of a person"
    assert {e.filename for e in sg3.values()} == {
        f"stylegan3-{k}-{d}-{r}x{r}.pkl" for k in "tr"
        for d, r in [("ffhq", 1024), ("ffhqu", 1024), ("ffhqu", 256), ("metfaces", 1024), ("metfacesu", 1024),
                     ("afhqv2", 512)]
    }


def test_the_demo_stylegan3_loads_offline():
    g, info = zoo.load_generator_by_id("demo-sg3")
    assert info["demo"] and info["family"] == "stylegan3-t" and g.size == 32
    with torch.no_grad():
        img = g.render(torch.randn(1, g.style_dim), truncation=0.7)
    assert img.shape == (1, 3, 32, 32) and torch.isfinite(img).all()
