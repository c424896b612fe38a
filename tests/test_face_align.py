"""Face alignment (issue 20): FFHQ's crop geometry on synthetic faces, the landmark pipeline with
stand-in models, which generators align, and the landmark weights through our verified downloader."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import socket
import sys

import numpy as np
import pytest
import torch
from _models_server import Behaviour, free_port, serve
from PIL import Image, ImageDraw

from engine import weight_files
from engine.config import DEMO_GENERATOR_ID
from engine.errors import NoFaceFound
from engine.face_align import align_face, alignment_note, is_face_domain, pretrained
from engine.face_align.ffhq_crop import crop_quad, ffhq_quad
from engine.face_align.landmarks import LandmarkFinder, decode_heatmaps

OUT = 256
EYES, MOUTH_DROP, MOUTH_WIDTH = 100.0, 110.0, 90.0  # the synthetic face, in its own units
COLOURS = {"eye_left": (255, 0, 0), "eye_right": (0, 255, 0), "mouth_left": (0, 0, 255), "mouth_right": (255, 255, 0)}
FACE = {  # upright face, origin between the eyes, y down
    "eye_left": (-EYES / 2, 0.0),
    "eye_right": (EYES / 2, 0.0),
    "mouth_left": (-MOUTH_WIDTH / 2, MOUTH_DROP),
    "mouth_right": (MOUTH_WIDTH / 2, MOUTH_DROP),
}


def ffhq_targets(size: int = OUT) -> dict[str, tuple[float, float]]:
    """Where FFHQ's rule puts each feature of FACE in a size² crop (pixel-index coordinates), worked out by
    hand: the square's half side is max(2 x eye distance, 1.8 x eye-to-mouth), its centre a tenth of the
    eye-to-mouth vector below the eyes, and it is upright for an upright face."""
    half = max(2 * EYES, 1.8 * MOUTH_DROP)
    k = size / (2 * half)
    centre = (0.0, 0.1 * MOUTH_DROP)
    return {
        n: (size / 2 + (x - centre[0]) * k - 0.5, size / 2 + (y - centre[1]) * k - 0.5) for n, (x, y) in FACE.items()
    }


def place(roll: float, scale: float, at: tuple[float, float]) -> dict[str, np.ndarray]:
    c, s = math.cos(roll), math.sin(roll)
    return {n: np.array([c * x - s * y, s * x + c * y]) * scale + np.array(at) for n, (x, y) in FACE.items()}


def draw_face(size: tuple[int, int], points: dict[str, np.ndarray], radius: float) -> Image.Image:
    img = Image.new("RGB", size, (120, 130, 140))
    d = ImageDraw.Draw(img)
    for name, (x, y) in points.items():
        d.ellipse([x - radius, y - radius, x + radius, y + radius], fill=COLOURS[name])
    return img


def landmarks68(points: dict[str, np.ndarray]) -> np.ndarray:
    lm = np.tile((points["mouth_left"] + points["eye_right"]) / 2, (68, 1))  # the rest: anywhere on the face
    lm[36:42] = points["eye_left"]
    lm[42:48] = points["eye_right"]
    lm[48], lm[54] = points["mouth_left"], points["mouth_right"]
    return lm


def found_features(img: Image.Image) -> dict[str, tuple[float, float]]:
    arr = np.asarray(img, dtype=np.float32)
    out = {}
    for name, rgb in COLOURS.items():
        ys, xs = np.nonzero(np.all(np.abs(arr - np.array(rgb)) < 60, axis=-1))
        assert len(xs) > 10, f"{name} is not in the aligned crop"
        out[name] = (float(xs.mean()), float(ys.mean()))
    return out


def assert_ffhq_placement(img: Image.Image, tolerance: float) -> None:
    assert img.size == (OUT, OUT) and img.mode == "RGB"
    got, want = found_features(img), ffhq_targets()
    for name in FACE:
        assert math.dist(got[name], want[name]) < tolerance, (name, got[name], want[name])
    assert abs(got["eye_left"][1] - got["eye_right"][1]) < 1.0  # upright: eyes level


@pytest.mark.parametrize(
    ("roll", "scale", "at", "size"),
    [
        (0.0, 1.0, (400, 300), (800, 700)),  # upright, inside the photo
        (0.4, 1.7, (420, 380), (900, 800)),  # rolled and larger: the square leaves the photo (padding)
        (-0.7, 0.6, (60, 70), (300, 200)),  # near a corner of a small photo
        (2.0, 5.0, (1500, 1200), (3000, 2600)),  # upside down and huge: shrunk before sampling
    ],
)
def test_the_crop_puts_eyes_and_mouth_where_ffhq_does_for_any_roll_scale_and_place(roll, scale, at, size):
    points = place(roll, scale, at)
    photo = draw_face(size, points, radius=6 * scale)
    aligned = crop_quad(photo, ffhq_quad(landmarks68(points)), OUT)
    assert_ffhq_placement(aligned, tolerance=1.5)


def test_where_the_square_leaves_the_photo_it_is_filled_from_the_photo_not_black():
    points = place(0.3, 1.0, (70, 60))  # the face in the top-left corner: most of the square is outside
    aligned = np.asarray(crop_quad(draw_face((400, 300), points, 6), ffhq_quad(landmarks68(points)), OUT))
    corner = aligned[:20, :20].reshape(-1, 3).astype(int)
    assert np.abs(corner - np.array([120, 130, 140])).max() < 12  # the photo's own colour, faded, never black


def test_heatmap_peaks_are_found_to_a_quarter_pixel():
    true = torch.tensor([[10.3, 40.8], [0.0, 63.0], [31.6, 5.2]])  # (x, y); the second on the border
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    hm = torch.stack([torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / 2.0) for x, y in true])[None]
    got = decode_heatmaps(hm)[0]
    assert (got - true).abs().max() <= 0.3
    assert got[1].tolist() == [0.0, 63.0]  # no neighbour on one side: left as found


class MarkerNet(torch.nn.Module):
    """Stand-in landmark network: one heatmap per marker colour of the synthetic face (a 4x pooled, blurred
    colour match), routed to the 68 slots the FFHQ rule reads (eyes 36-47, mouth corners 48 and 54)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = []
        for rgb in COLOURS.values():
            want = torch.tensor(rgb, dtype=x.dtype).view(1, 3, 1, 1) / 255
            maps.append(torch.exp(-((x - want) ** 2).sum(1, keepdim=True) * 20))
        m = torch.nn.functional.avg_pool2d(torch.cat(maps, 1), 4)
        m = torch.nn.functional.avg_pool2d(m, 3, stride=1, padding=1)
        slots = [3] * 68
        slots[36:42], slots[42:48], slots[48], slots[54] = [0] * 6, [1] * 6, 2, 3
        return m[:, slots]


class BoxDetector:
    """Stand-in detector: fixed boxes, in the coordinates of the image it is given."""

    def __init__(self, boxes: list[list[float]]) -> None:
        self.boxes, self.seen = boxes, []

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        self.seen.append(rgb.shape)
        return np.array(self.boxes, dtype=np.float64).reshape(-1, 5)


def test_align_face_finds_the_largest_face_and_crops_it_as_ffhq_did():
    points = place(-0.25, 1.3, (300, 260))
    photo = draw_face((600, 520), points, radius=10)
    face_box = [150, 170, 450, 450, 0.99]  # around eyes and mouth, as a face detector's box would be
    decoy = [10, 10, 60, 60, 0.99]  # a smaller "face": not the one to align
    detector = BoxDetector([decoy, face_box])
    aligned = align_face(photo, OUT, landmarks=LandmarkFinder(detector, MarkerNet()))
    assert_ffhq_placement(aligned, tolerance=2.5)
    assert detector.seen == [(520, 600, 3)]  # one detection pass on the photo (small enough: not shrunk)


def test_a_big_photo_is_detected_on_a_shrunk_copy_and_boxes_scaled_back():
    points = place(0.1, 4.0, (1200, 1000))
    photo = draw_face((2400, 2000), points, radius=40)
    detector = BoxDetector([[b / 3.75 for b in (600, 700, 1800, 1800)] + [0.9]])  # boxes on the 640 px copy
    aligned = align_face(photo, OUT, landmarks=LandmarkFinder(detector, MarkerNet()))
    assert detector.seen == [(533, 640, 3)]
    assert_ffhq_placement(aligned, tolerance=2.5)


def test_no_face_says_so_names_the_photo_and_suggests_no_align():
    photo = Image.new("RGB", (200, 200), (50, 60, 70))
    with pytest.raises(NoFaceFound) as err:
        align_face(photo, OUT, source="holiday.jpg", landmarks=LandmarkFinder(BoxDetector([]), MarkerNet()))
    assert "No face was found in holiday.jpg" in str(err.value) and "--no-align" in str(err.value)


@pytest.mark.parametrize(
    ("model", "aligned"),
    [
        ("ffhq", True),
        ("ffhq-ada", True),
        ("metfaces", True),
        ("afhqdog", False),  # animal faces: the human-face detector does not fit them
        ("afhqcat", False),
        ("church", False),
        (DEMO_GENERATOR_ID, False),
        ("/some/where/my-ffhq-finetune.pt", False),  # a file: nothing says what it was trained on
        ({"base_model": {"id": "ffhq", "weights_sha256": "ab"}, "name": "my run"}, True),  # session.json
        ({"id": "metfaces"}, True),  # a session's base_model table
        ({"name": "afhqwild", "resolution": 512}, False),  # the info loading a generator returns
    ],
)
def test_which_generators_get_aligned_photos(model, aligned):
    assert is_face_domain(model) is aligned


def test_the_note_says_why_animal_faces_are_not_aligned():
    assert "human faces only" in alignment_note("afhqcat")
    assert "--no-align" in alignment_note("ffhq")


# ----- the real model classes, loaded from our verified files ------------------------------------------
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def served_weights(tmp_path, monkeypatch):
    """The registered landmark weight files, as random-initialised S3FD and 2D-FAN-4 state dicts (fixed
    seed; the real ones cannot be downloaded here), served from 127.0.0.1 as the configured mirror."""
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    torch.manual_seed(0)
    nets = {pretrained.DETECTOR_WEIGHTS: s3fd(), pretrained.LANDMARK_WEIGHTS: FAN(pretrained.FAN_HOURGLASSES)}
    files = {}
    for name, net in nets.items():
        row = weight_files.WEIGHT_FILES[name]
        path = tmp_path / row.filename
        torch.save(net.state_dict(), path)
        data = path.read_bytes()
        files[row.filename] = data
        monkeypatch.setitem(
            weight_files.WEIGHT_FILES, name, dataclasses.replace(row, sha256=_sha256(data), size_bytes=len(data))
        )
    behaviour = Behaviour(files=files)
    with serve(behaviour) as base:
        monkeypatch.setenv("NADA_TUI_MIRROR", base)
        yield nets, behaviour


@pytest.fixture
def no_internet(monkeypatch):
    """Any connection to a host other than 127.0.0.1, and torch.hub's and face-alignment's own
    downloaders, fail the test."""
    import face_alignment.api
    import face_alignment.detection.sfd.sfd_detector as sfd_detector
    import face_alignment.utils

    real_connect = socket.socket.connect

    def guarded_connect(sock, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"network access to {address}")
        return real_connect(sock, address)

    def fetch(*args, **kwargs):
        raise AssertionError(f"a library downloader was called: {args}")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    for module, name in [
        (torch.hub, "load_state_dict_from_url"),
        (torch.hub, "download_url_to_file"),
        (face_alignment.utils, "load_file_from_url"),
        (face_alignment.api, "load_file_from_url"),
        (sfd_detector, "load_state_dict_from_url"),
    ]:
        monkeypatch.setattr(module, name, fetch)


def test_landmark_weights_come_through_our_downloader_and_load_into_the_library_models(
    served_weights, no_internet
):
    nets, behaviour = served_weights
    finder = pretrained.pretrained_finder("cpu")
    got = sorted(path.rsplit("/", 1)[-1] for path, _ in behaviour.requests)
    assert got == sorted(weight_files.WEIGHT_FILES[n].filename for n in nets)  # each fetched once, by us
    for name, net in nets.items():
        loaded = finder.detector.network if name == pretrained.DETECTOR_WEIGHTS else finder.network
        pairs = zip(net.state_dict().values(), loaded.state_dict().values(), strict=True)
        assert all(torch.equal(a, b) for a, b in pairs)
        assert weight_files.weight_path(name).is_file()
    assert pretrained.pretrained_finder("cpu") is finder  # loaded once, not per photo
    pretrained.unload("cpu")
    assert pretrained.pretrained_finder("cpu") is not finder  # loaded again after unload ...
    assert len(behaviour.requests) == 2  # ... from the cache: downloaded once
    # The library's detector runs through our wrapper: boxes as (x1, y1, x2, y2, score) rows. (The 2D-FAN
    # forward pass is left to the bench: tens of seconds on a busy CPU with its 4 hourglasses.)
    boxes = finder.detector.detect(np.full((48, 40, 3), 180, dtype=np.uint8))
    assert boxes.ndim == 2 and boxes.shape[1] == 5 and (boxes[:, 4] > pretrained.SCORE_THRESHOLD).all()


def test_offline_the_message_says_where_to_put_the_landmark_weights_and_offers_no_align(monkeypatch):
    from engine.download import DownloadError

    monkeypatch.setenv("NADA_TUI_MIRROR", f"http://127.0.0.1:{free_port()}/models")
    with pytest.raises(DownloadError) as err:
        align_face(Image.new("RGB", (64, 64)), OUT)
    text = str(err.value)
    assert str(weight_files.weight_path(pretrained.DETECTOR_WEIGHTS)) in text
    assert "s3fd-619a316812.pth" in text and "--no-align" in text


def test_the_registered_hashes_match_the_hash_prefixes_in_the_published_file_names():
    for name in (pretrained.DETECTOR_WEIGHTS, pretrained.LANDMARK_WEIGHTS):
        row = weight_files.WEIGHT_FILES[name]
        prefix = re.search(r"-([0-9a-f]{10})\.", row.filename).group(1)
        assert row.sha256 is not None and row.sha256.startswith(prefix)


def test_without_the_library_or_its_system_libraries_the_message_says_what_to_install(monkeypatch, tmp_path):
    from engine.errors import FaceAlignUnavailable, PhotoError

    monkeypatch.setitem(sys.modules, "face_alignment.detection.sfd.net_s3fd", None)  # import fails
    with pytest.raises(FaceAlignUnavailable) as err:
        pretrained.build_finder(tmp_path / "s3fd.pth", tmp_path / "fan.pth.tar")
    assert isinstance(err.value, PhotoError)  # reported like any photo that cannot be prepared
    assert "pip install face-alignment" in str(err.value) and "--no-align" in str(err.value)
