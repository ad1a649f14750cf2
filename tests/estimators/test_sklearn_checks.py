"""scikit-learn's own estimator checks, run on every regressor this package exports."""

from sklearn.utils.estimator_checks import parametrize_with_checks

import ssmforecast.estimators as est

# Small and fast, with enough capacity to pass check_regressors_train (R² > 0.5 on a noisy
# make_regression read as length-10 sequences). Mamba learns that task more slowly: more epochs at a
# higher rate, and no validation tail (20 noisy samples stop it early). It runs in float64: in float32
# its predictions for a subset of rows differ from the full batch's by ~3e-7, over
# check_methods_subset_invariance's 1e-7, because the matrix kernels depend on the number of rows
# (cuBLAS on an H100, and on the CPU too since this machine became an AMD EPYC: an addmm of 5 rows
# differs from the same rows of 20 by ~2e-6 there).
COMMON = {"d_model": 8, "n_layers": 1, "random_state": 0}
FAST = {
    "S4Regressor": {"d_state": 32, "lr": 1e-2, "max_epochs": 30},
    "S4DRegressor": {"d_state": 32, "lr": 1e-2, "max_epochs": 30},
    "MambaRegressor": {"d_state": 8, "lr": 3e-2, "max_epochs": 40, "validation_fraction": 0.0, "precision": "64"},
}

REGRESSORS = [getattr(est, name)(**COMMON, **FAST[name]) for name in est.__all__ if name.endswith("Regressor")]

# Checks that cannot apply, with the reason (also listed in docs/estimators.md).
EXPECTED_FAILED_CHECKS: dict = {}


@parametrize_with_checks(REGRESSORS, expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible_regressor(estimator, check):
    check(estimator)
