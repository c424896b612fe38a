"""NVIDIA pickles: converted without running code, same images as the generator they were made from."""

from __future__ import annotations

import builtins
import os
import pickle

import pytest
import torch
from _models_fakes import busy_generator, write_ada_pickle_from_generator, write_tf_pickle

from engine.demo import tiny_generator
from engine.generator_files import CheckpointError, load_generator
from engine.nvidia_pickles import PickleRefused, load_restricted


def _images(g, seed: int = 0):
    z = torch.randn(3, g.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return torch.cat([g.render(z, truncation=0.7), g.render(z, noise="const")])


@pytest.mark.parametrize("protocol, old_numpy", [(4, False), (2, True)])
def test_tf_pickle_gives_same_images(tmp_path, protocol, old_numpy):
    g = busy_generator(3)
    other = tiny_generator(32, seed=9)  # the file's non-EMA G: must not be picked
    path = write_tf_pickle(
        tmp_path / "stylegan2-tiny-config-f.pkl", g, other, protocol=protocol, old_numpy_names=old_numpy
    )
    h, info = load_generator(path)
    assert info["format"] == "nvidia-tf-pkl"
    assert (info["size"], info["n_mlp"], info["style_dim"]) == (32, 2, 32)
    assert info["has_latent_avg"] and torch.allclose(h.latent_avg, g.latent_avg)
    # Only mod_bias goes through -1/+1 rounding; everything else is bit-exact.
    torch.testing.assert_close(_images(h), _images(g), atol=1e-4, rtol=0)
    assert (_images(h) - _images(other)).abs().max() > 0.1


@pytest.mark.parametrize("protocol", [3, 4])
def test_ada_pickle_gives_same_images(tmp_path, protocol):
    # The ada file is made from TF variables with NVIDIA's legacy.py formulas (conv0 flipped once),
    # so this also checks that ada's conv0 weights need no second flip.
    g = busy_generator(seed=5)
    path = write_ada_pickle_from_generator(tmp_path / "afhqtiny.pkl", g, protocol=protocol)
    h, info = load_generator(path)
    assert info["format"] == "nvidia-ada-pkl"
    assert info["size"] == 32 and info["has_latent_avg"]
    torch.testing.assert_close(_images(h), _images(g), atol=1e-4, rtol=0)


def test_tf_and_ada_files_of_the_same_weights_agree(tmp_path):
    g = busy_generator(seed=7)
    tf, _ = load_generator(write_tf_pickle(tmp_path / "a.pkl", g))
    ada, _ = load_generator(write_ada_pickle_from_generator(tmp_path / "b.pkl", g))
    for (k, a), b in zip(tf.state_dict().items(), ada.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)


# ----- malicious files ----------------------------------------------------------------------------------
class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",))


class _Exec:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("evil", [_System, _Eval, _Exec])
def test_pickle_that_runs_code_is_refused(tmp_path, evil):
    marker = tmp_path / "pwned"
    # Sanity: the payload really works when unpickled normally.
    pickle.loads(pickle.dumps(evil(marker)))
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": evil(marker)}))
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    assert not marker.exists()
    msg = str(err.value)
    assert str(path) in msg and "refused" in msg
    assert ("system" in msg) or ("eval" in msg) or ("exec" in msg)


def test_malicious_object_inside_a_valid_ada_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = write_ada_pickle_from_generator(tmp_path / "x.pkl", tiny_generator(32), extra={"bonus": _System(marker)})
    with pytest.raises(CheckpointError, match="posix.system|os.system|nt.system"):
        load_generator(path)
    assert not marker.exists()


def test_class_outside_the_allowed_stubs_is_refused(tmp_path):
    # A real ada-pytorch network class referenced by name (not through persistence) would import
    # `training.networks` from the user's path: refused.
    blob = pickle.dumps(torch.nn.Linear(2, 2))
    path = tmp_path / "module.pkl"
    path.write_bytes(blob)
    with pytest.raises(PickleRefused, match="torch.nn.modules.linear.Linear"):
        load_restricted(path)
    with pytest.raises(CheckpointError, match="not part of an NVIDIA"):
        load_generator(path)


def test_source_code_stored_in_nvidia_files_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').close()\n"
    g = tiny_generator(32)
    load_generator(write_tf_pickle(tmp_path / "tf.pkl", g, build_module_src=code))
    load_generator(write_ada_pickle_from_generator(tmp_path / "ada.pkl", g, module_src=code))
    assert not marker.exists()


def test_malicious_torch_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": _System(marker)}, path)
    with pytest.raises(CheckpointError, match="refused for safety"):
        load_generator(path)
    assert not marker.exists()


def test_truncated_pickle_gets_a_clear_error(tmp_path):
    full = write_tf_pickle(tmp_path / "full.pkl", tiny_generator(32)).read_bytes()
    path = tmp_path / "cut.pkl"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(CheckpointError, match="truncated") as err:
        load_generator(path)
    assert str(path) in str(err.value)


def test_pickle_of_something_else_gets_a_clear_error(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CheckpointError, match="not NVIDIA networks"):
        load_generator(path)
    path.write_bytes(pickle.dumps({"D": 1}))
    with pytest.raises(CheckpointError, match="without 'G_ema'"):
        load_generator(path)
