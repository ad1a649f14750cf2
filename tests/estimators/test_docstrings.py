"""Docstrings cannot drift: every documented parameter and default matches the signature."""

import inspect
import re

import pytest

import ssmforecast.estimators as est


@pytest.mark.parametrize("name", est.__all__)
def test_documented_parameters_match_signature(name):
    cls = getattr(est, name)
    doc = inspect.getdoc(cls)
    params_block = doc.split("Parameters\n----------\n", 1)[1].split("Attributes\n----------", 1)[0]
    documented = {}
    for line in params_block.splitlines():
        m = re.match(r"^(\w+) : .*?(?:default=(.+))?$", line)
        if m:
            documented[m.group(1)] = m.group(2)
    signature = inspect.signature(cls.__init__).parameters
    expected = [p for p in signature if p != "self"]
    assert list(documented) == expected, f"{name}: documented {list(documented)} vs signature {expected}"
    for p, default in documented.items():
        assert default is not None, f"{name}.{p}: no default documented"
        assert eval(default) == signature[p].default, f"{name}.{p}: documented default {default}, real {signature[p].default!r}"
