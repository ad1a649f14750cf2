"""The training loop's time-ordered validation split."""

import pytest

from ssmforecast.estimators._loop import split_validation


def test_a_fraction_k_over_n_holds_out_exactly_k_samples():
    for n in range(50, 3000, 7):
        for k in range(1, n // 2, 5):
            assert n - split_validation(n, k / n) == k


def test_validation_tail_edges():
    assert split_validation(100, 0.0) == 100  # no validation
    assert split_validation(100, 0.105) == 89  # ⌈10.5⌉ = 11 held out
    assert split_validation(3, 0.9) == 3  # fewer than 2 training samples would remain: no validation
    with pytest.raises(ValueError, match="validation_fraction"):
        split_validation(100, 1.0)
