"""Every bad or unusual photo a user may hand `nada-tui photos`: refused with a message that names the file
and says what to do, or read as the upright 8-bit RGB picture a viewer would show."""

from __future__ import annotations

import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import PhotoError
from engine.photos.framing import centre_crop, wants_alignment
from engine.photos.loading import MAX_PIXELS, MAX_SIDE, MIN_SIDE, find_photos, load_photo


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims width x height but holds one empty data chunk: decoding it would fail."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    return path


def _refused(path: Path, *words: str) -> str:
    with pytest.raises(PhotoError) as err:
        load_photo(path)
    message = str(err.value)
    assert str(path) in message
    for w in words:
        assert w in message
    return message


def test_not_an_image(tmp_path):
    f = tmp_path / "notes.jpg"
    f.write_text("shopping list")
    _refused(f, "not an image", "re-export")


def test_truncated_file(tmp_path):
    whole = tmp_path / "whole.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    _refused(cut, "truncated or corrupt")


@pytest.mark.parametrize("side", [10_000, 20_000])  # over our limit; over twice PIL's (PIL's own refusal)
def test_decompression_bomb_is_refused_from_its_header(tmp_path, side):
    assert side * side > MAX_PIXELS
    bomb = _png_header_only(tmp_path / "bomb.png", side, side)
    _refused(bomb, "decompression bomb", "not decoded", "downscale")  # decoding it would say "truncated"


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_fifo_and_device_are_refused_without_opening(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe.png"
        os.mkfifo(path)  # opening it for reading would block for ever: nobody writes
    else:
        path = Path("/dev/zero")
    outcome: list[str] = []
    t = threading.Thread(target=lambda: outcome.append(_refused(path, "not a regular file")), daemon=True)
    t.start()
    t.join(10)
    assert outcome, "load_photo blocked on a special file"
    assert ("FIFO" if kind == "fifo" else "device") in outcome[0]


def test_tiny_photo_is_refused_with_the_minimum(tmp_path):
    f = tmp_path / "icon.png"
    Image.new("RGB", (MIN_SIDE - 1, 300), "red").save(f)
    _refused(f, f"{MIN_SIDE} px minimum", "larger photo")


def test_huge_photo_is_downscaled(tmp_path):
    f = tmp_path / "huge.jpg"
    Image.new("RGB", (MAX_SIDE * 2, MAX_SIDE + 100), (10, 200, 30)).save(f, quality=95)
    img = load_photo(f)
    assert max(img.size) == MAX_SIDE and img.mode == "RGB"
    assert abs(img.width / img.height - (MAX_SIDE * 2) / (MAX_SIDE + 100)) < 0.01


def test_cmyk_becomes_rgb(tmp_path):
    f = tmp_path / "print.jpg"
    Image.new("CMYK", (100, 100), (0, 255, 255, 0)).save(f, quality=95)  # full magenta + yellow: red
    r, g, b = load_photo(f).getpixel((50, 50))
    assert load_photo(f).mode == "RGB" and r > 200 and g < 60 and b < 60


def test_grayscale_becomes_rgb(tmp_path):
    f = tmp_path / "gray.png"
    Image.new("L", (100, 100), 90).save(f)
    img = load_photo(f)
    assert img.mode == "RGB" and img.getpixel((5, 5)) == (90, 90, 90)


def test_alpha_is_laid_over_white(tmp_path):
    f = tmp_path / "cutout.png"
    im = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    im.paste((0, 0, 255, 255), (50, 0, 100, 100))
    im.save(f)
    img = load_photo(f)
    assert img.getpixel((10, 10)) == (255, 255, 255) and img.getpixel((90, 10)) == (0, 0, 255)


def test_16_bit_is_scaled_not_clipped(tmp_path):
    f = tmp_path / "deep.png"
    Image.fromarray(np.full((100, 100), 32768, dtype=np.uint16)).save(f)
    with Image.open(f) as stored:
        assert stored.mode.startswith("I")
    assert load_photo(f).getpixel((1, 1)) == (128, 128, 128)


def test_exif_rotation_is_honoured(tmp_path):
    f = tmp_path / "phone.jpg"
    im = Image.new("RGB", (200, 100), (255, 0, 0))
    im.paste((0, 0, 255), (100, 0, 200, 100))  # stored: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    im.save(f, exif=exif, quality=95)
    img = load_photo(f)
    assert img.size == (100, 200)  # upright: portrait
    top, bottom = img.getpixel((50, 20)), img.getpixel((50, 180))
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60


def test_no_align_crops_the_centre_square(tmp_path):
    im = Image.new("RGB", (300, 100), (255, 0, 0))
    im.paste((0, 255, 0), (100, 0, 200, 100))  # the middle third is green
    out = centre_crop(im, 64)
    assert out.size == (64, 64)
    assert out.getpixel((32, 32)) == (0, 255, 0) and out.getpixel((1, 1))[1] > 200


def test_alignment_default_follows_the_model():
    assert wants_alignment("ffhq") and wants_alignment("metfaces")
    assert not wants_alignment("afhqdog")  # the landmark detector knows human faces only
    assert not wants_alignment("demo-tiny") and not wants_alignment("church")


def test_folders_are_expanded_to_every_visible_file(tmp_path):
    (tmp_path / "b.png").write_bytes(b"x")
    (tmp_path / "a.txt").write_bytes(b"x")
    (tmp_path / ".hidden.png").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in find_photos([tmp_path])] == ["a.txt", "b.png"]  # bad ones too: to be reported


def test_lpips_backbone_is_filled_from_torchvisions_names():
    import torch

    from engine.photos.perceptual import load_backbone

    net = torch.nn.Module()
    net.slice1 = torch.nn.Sequential()
    net.slice1.add_module("0", torch.nn.Conv2d(3, 4, 3))
    net.slice2 = torch.nn.Sequential()
    net.slice2.add_module("5", torch.nn.Conv2d(4, 2, 3))
    state = {"features.0.weight": torch.ones(4, 3, 3, 3), "features.0.bias": torch.zeros(4),
             "features.5.weight": torch.full((2, 4, 3, 3), 2.0), "features.5.bias": torch.ones(2)}
    load_backbone(net, state)
    assert float(net.slice2[0].weight.detach().mean()) == 2.0 and float(net.slice1[0].weight.detach().mean()) == 1.0
    del state["features.5.bias"]
    with pytest.raises(ValueError, match="features.5.bias"):
        load_backbone(net, state)


def test_a_vgg_file_that_is_not_torchvisions_is_removed():
    from engine.photos.perceptual import read_vgg16
    from engine.weight_files import weight_path

    fake = weight_path("vgg16-lpips")  # placed by hand, as offline users do: checked all the same
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not vgg")
    with pytest.raises(ValueError, match="not torchvision's VGG16"):
        read_vgg16()
    assert not fake.exists()


