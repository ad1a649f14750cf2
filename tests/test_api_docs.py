"""docs/api.md names every public class and function, so the reference cannot silently fall behind."""

import importlib
import inspect

import pytest

import ssmforecast
import ssmforecast.datasets
import ssmforecast.nn

from conftest import REPO

API = (REPO / "docs" / "api.md").read_text()
MATH = ["hippo", "discretize", "kernels", "conv", "scan"]


def _public_functions(module):
    return [n for n, o in vars(module).items() if not n.startswith("_") and inspect.isfunction(o) and o.__module__ == module.__name__]


@pytest.mark.parametrize("name", ssmforecast.__all__ + ssmforecast.nn.__all__ + ssmforecast.datasets.__all__)
def test_package_names_are_documented(name):
    assert f"`{name}" in API


@pytest.mark.parametrize("module", MATH)
def test_math_functions_are_documented(module):
    mod = importlib.import_module(f"ssmforecast.math.{module}")
    assert f"`ssmforecast.math.{module}`" in API
    for name in _public_functions(mod):
        assert f"`{name}(" in API, f"ssmforecast.math.{module}.{name} is missing from docs/api.md"
