"""Benchmarks that put the forecasters next to published numbers (the top layer: nothing imports it).

- :mod:`~ssmforecast.benchmarks.ett`: the ETT benchmark under the Informer and LTSF protocols,
  ``python -m ssmforecast.benchmarks.ett`` (see ``docs/benchmark.md``).
- :mod:`~ssmforecast.benchmarks.linear`: the least-squares linear reference (NLinear in closed form)
  under the same protocols, ``python -m ssmforecast.benchmarks.linear``.
"""
