"""sktime's own conformance suite (TestAllObjects, TestAllEstimators, TestAllForecasters), run on
every forecaster this package exports with the configurations of its ``get_test_params``."""

import warnings

import pytest
from sktime.utils.estimator_checks import check_estimator

import ssmforecast.estimators as est

FORECASTERS = [name for name in est.__all__ if name.endswith("Forecaster")]


@pytest.mark.parametrize("name", FORECASTERS)
def test_sktime_check_estimator(name):
    with warnings.catch_warnings():
        # sktime's own forecasters used inside the suite warn about their remember_data default
        warnings.simplefilter("ignore", FutureWarning)
        results = check_estimator(getattr(est, name), raise_exceptions=False, verbose=False)
    failed = {test: str(outcome)[:300] for test, outcome in results.items() if outcome != "PASSED"}
    assert len(results) > 500  # the whole suite ran, not a skipped shell
    assert not failed, f"{len(failed)} of {len(results)} sktime checks failed: {failed}"
