"""Any PIL image mode to 8-bit RGB, the one conversion that target images and photos share: 16-bit and
float gray scaled (PIL's own convert would clip them to white), transparency laid over white as a viewer
shows it, palette, grayscale and CMYK converted."""

from __future__ import annotations

from PIL import Image

HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


def to_rgb8(img: Image.Image) -> Image.Image:
    """`img` as 8-bit RGB (the same object when it already is)."""
    mode = img.mode
    if mode in HIGH_DEPTH_MODES:
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if mode == "F" and arr.size and float(arr.max()) <= 1.0 else 65535.0
        scaled = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled).convert("RGB")
    if mode in ALPHA_MODES or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img if mode == "RGB" else img.convert("RGB")
