"""``python -m ssmforecast.benchmarks`` runs the ETT benchmark (the same as ``-m ssmforecast.benchmarks.ett``)."""

from .ett import main

if __name__ == "__main__":
    main()
