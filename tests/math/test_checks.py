"""Validation helpers: finite checks that cannot be fooled by an overflowing sum."""

import pytest
import torch

from ssmforecast.math._checks import check_choice, check_finite, check_step


def test_check_finite_accepts_large_finite_values_whose_sum_overflows():
    check_finite("x", torch.tensor([3e38, 3e38], dtype=torch.float32))  # sum is inf, entries finite


@pytest.mark.parametrize("bad,word", [(float("nan"), "NaN"), (float("inf"), "inf"), (-float("inf"), "inf")])
def test_check_finite_names_the_problem(bad, word):
    with pytest.raises(ValueError, match=f"x contains {word}"):
        check_finite("x", torch.tensor([1.0, bad]))
    with pytest.raises(ValueError, match=f"x contains {word}"):
        check_finite("x", torch.tensor([1.0 + 0j, complex(bad, 0.0)]))


def test_check_step_and_choice():
    check_step(torch.tensor([0.1, 2.0]))
    with pytest.raises(ValueError, match="dt must be strictly positive; smallest value is 0.0"):
        check_step(torch.tensor([0.1, 0.0]))
    with pytest.raises(ValueError, match="dt must be real"):
        check_step(torch.tensor([0.1 + 1j]))
    with pytest.raises(ValueError, match="unknown method 'x'; valid choices are 'a', 'b'"):
        check_choice("method", "x", ("a", "b"))
    with pytest.raises(ValueError, match="must be a torch.Tensor"):
        check_finite("x", [1.0])
