"""Selective copying (Gu & Dao 2023 §4.1.1): Mamba's input-dependent Δ, B, C solve it, an LTI S4D of
the same size and training budget does not. Runs ``examples/selective_copying.py``.

The quick configuration (length 32 + 4 answers, 8 content tokens, 2 layers, width 32, 500 Adam
steps of 32 sequences, seed 2) was measured on a 2-core CPU with one thread: Mamba 0.990 accuracy in
36 s, S4D 0.758 in 11 s, a margin of 23 points. Mamba's accuracy depends on the seed at this budget
(seed 0: 0.917), so the threshold is 0.90 for this one seed.
"""

import importlib.util

import pytest
import torch

from conftest import REPO


def _example():
    spec = importlib.util.spec_from_file_location("selective_copying", REPO / "examples" / "selective_copying.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    """Small tensors: one thread is faster than two on a shared 2-core machine, and repeatable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def quick_results():
    sc = _example()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {
            layer: sc.train_and_evaluate(layer, **sc.QUICK, layer_kwargs=sc.QUICK_LAYER_KWARGS[layer])
            for layer in ("mamba", "s4d")
        }
    finally:
        torch.set_num_threads(threads)


def test_batches_hold_the_content_in_order():
    sc = _example()
    tokens, targets = sc.make_batch(5, 20, 4, 8, torch.Generator().manual_seed(0))
    assert tokens.shape == (5, 24) and targets.shape == (5, 4)
    assert (tokens[:, 20:] == sc.MARKER).all()
    body = tokens[:, :20]
    assert ((body == sc.NOISE).sum(1) == 16).all()
    for row, target in zip(body, targets):
        assert torch.equal(row[row != sc.NOISE], target)  # content in order of appearance
    assert targets.min() >= 2 and targets.max() <= 9


def test_mamba_solves_selective_copying(quick_results):
    r = quick_results["mamba"]
    assert r["accuracy"] >= 0.90, r


def test_s4d_does_not(quick_results):
    mamba, s4d = quick_results["mamba"], quick_results["s4d"]
    # comparable size: S4D with its default state has about as many parameters
    assert 0.5 < s4d["n_params"] / mamba["n_params"] < 2
    assert s4d["accuracy"] <= mamba["accuracy"] - 0.15, (mamba, s4d)


def test_example_command_line_runs(capsys):
    results = _example().main(["--steps", "2", "--seq-len", "8", "--n-memorize", "2", "--d-model", "8", "--d-state", "4"])
    assert [r["layer"] for r in results] == ["mamba", "s4d"]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in results)
    out = capsys.readouterr().out
    assert "mamba {'d_state': 4}: accuracy" in out and "s4d {'d_state': 4}: accuracy" in out


@pytest.mark.slow
def test_selective_copying_at_the_seeds_size(one_thread):
    """Vocabulary 16 (14 content tokens), 16 tokens to copy after 64 positions, 3000 steps.

    Measured (2-core CPU, one thread, seed 0): Mamba 0.804 in 918 s, still learning (not converged
    at 3000 steps); S4D 0.455 in 116 s.
    """
    sc = _example()
    mamba = sc.train_and_evaluate("mamba", layer_kwargs={"d_state": 8})
    s4d = sc.train_and_evaluate("s4d", layer_kwargs={"d_state": 64})
    assert mamba["accuracy"] >= 0.75, mamba
    assert s4d["accuracy"] <= mamba["accuracy"] - 0.20, (mamba, s4d)
