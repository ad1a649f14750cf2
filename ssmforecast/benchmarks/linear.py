"""The least-squares linear reference of the ETT protocols: NLinear fitted in closed form.

For each lookback L and horizon H, one linear map per step ahead from a channel's L context values
to its H future values (NLinear, Zeng et al., AAAI 2023, §4; one map shared by the channels, each
channel's window on its own, as the forecasters' ``channels="independent"``), with the window
normalised by its own context as the forecasters' RevIN is (μ, σ = sqrt(var + 1e-5)):

    ŷ = σ (V x̃ + v) + μ,   x̃ = (x − μ) / σ,

or, with ``--no-revin``, of the standardised context as it is (μ = 0, σ = 1: DLinear's "Linear",
ibid., which keeps the window's level as information, ``revin=False`` of the forecasters);
V (H × L), v (H,) minimising the squared error in the protocol's standardised units over the train
windows, Σ σ² ‖V x̃ + v − ỹ‖², by :func:`ssmforecast.estimators.forecasters.skip_lstsq` (the start
of ``linear_skip="lstsq"``). No training loop, no seed: the numbers are those of the data and the
protocol alone, which makes them a reference for what a linear map of the context can reach and for
how the validation split ranks it. Scored as :mod:`ssmforecast.benchmarks.ett` scores our models:
MSE / MAE over every stride-1 window of the val and test segments (no drop_last).

Run::

    OMP_WAIT_POLICY=PASSIVE python -m ssmforecast.benchmarks.linear --data ETTh2 --features S \\
        --protocol informer --lookback 96 336 720 --horizons 336 720 --data-dir ../shared/data/ETT

It prints one Markdown table (val MSE, test MSE / MAE per L and H, the L of lowest val MSE per H in
bold); ``--out FILE.md`` also writes it to a file.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ..datasets import horizons as protocol_horizons
from ..datasets import load_ett, mse_mae, split, windows
from ..estimators._windows import instance_stats
from ..estimators.forecasters import skip_lstsq


def _channel_rows(segment: np.ndarray, target_index: np.ndarray, L: int, H: int, revin: bool = True):
    """Every window of a segment, one row per target channel: → (x̃ (m, L), ỹ (m, H), μ (m, 1), σ (m, 1))
    with m = windows · C, normalised by each window's context (RevIN; μ = 0, σ = 1 without)."""
    X, Y = windows(segment, L, H, target_index)  # (n, L, F), (n, H, C)
    context = X[..., target_index]  # (n, L, C)
    mu, sigma = instance_stats(context, revin)  # (n, 1, C) each
    rows = lambda a: np.ascontiguousarray(a.transpose(0, 2, 1)).reshape(-1, a.shape[1])  # noqa: E731  (n, k, C) → (n·C, k)
    return rows((context - mu) / sigma), rows((Y - mu) / sigma), rows(mu), rows(sigma)


def linear_reference(splits, H: int, revin: bool = True) -> dict:
    """Fit V, v on the train windows of ``splits`` (lookback = ``splits.lookback``); score val and test.
    ``revin=False``: the map reads the standardised context as it is (μ = 0, σ = 1 above).

    → {"L", "H", "val": val MSE, "test": (MSE, MAE), "windows": test windows}."""
    L, idx = splits.lookback, splits.target_index
    x, y, _, sigma = _channel_rows(splits.train, idx, L, H, revin)
    V, v = skip_lstsq(x, y, sigma[:, 0] ** 2)  # σ²-weighted: the squared error in standardised units
    scores = {}
    for name in ("val", "test"):
        x, y, mu, sigma = _channel_rows(getattr(splits, name), idx, L, H, revin)
        pred = sigma * (x @ V.T + v) + mu  # (m, H): back in standardised units
        scores[name] = mse_mae(pred, sigma * y + mu)
    return {"L": L, "H": H, "val": scores["val"][0], "test": scores["test"], "windows": len(x) // len(idx)}


def table(rows: list[dict], header: str) -> str:
    """The rows of :func:`linear_reference` as a Markdown table under ``header``."""
    best = {}
    for r in rows:
        if r["H"] not in best or r["val"] < best[r["H"]]["val"]:
            best[r["H"]] = r
    lines = [header, "", "| H | L | val MSE | test MSE / MAE | test windows |", "|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["H"], r["L"])):
        b = "**" if best[r["H"]] is r else ""
        lines.append(f"| {r['H']} | {b}{r['L']}{b} | {b}{r['val']:.4f}{b} | {r['test'][0]:.4f} / {r['test'][1]:.4f} | {r['windows']} |")
    lines += ["", "Bold: the lookback of lowest val MSE at each H (the choice the validation split makes)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Command line: fit and score every (lookback, horizon) asked for; print (and write) the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="ETTh1", choices=["ETTh1", "ETTh2"])
    p.add_argument("--features", default="M", choices=["S", "M"], help="S: OT alone; M: each of the 7 channels from its own context (MS would equal S: the map reads only the target's context)")
    p.add_argument("--protocol", default="ltsf", choices=["informer", "ltsf"])
    p.add_argument("--lookback", type=int, nargs="+", default=[96, 336])
    p.add_argument("--horizons", type=int, nargs="+", help="default: the protocol's")
    p.add_argument("--data-dir", help="folder with the ETT CSV files (default: cache / download)")
    p.add_argument(
        "--revin", action=argparse.BooleanOptionalAction, default=True,
        help="normalise each window by its context (NLinear with RevIN, the default), or not (--no-revin: the map "
        "of the standardised context as it is, DLinear's Linear)",
    )  # fmt: skip
    p.add_argument("--out", help="also write the table to this Markdown file")
    args = p.parse_args(argv)
    df = load_ett(args.data, path=args.data_dir)
    hs = args.horizons or list(protocol_horizons(args.protocol, args.data))
    start = time.perf_counter()
    splits = [split(df, args.data, L, args.features) for L in args.lookback]  # one cut and scaling per L
    rows = [linear_reference(s, H, args.revin) for s in splits for H in hs]
    command = "python -m ssmforecast.benchmarks.linear " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (
        f"**{args.data} · {args.protocol} protocol · features {args.features} · least-squares "
        f"{'NLinear' if args.revin else 'Linear (no RevIN)'} "
        f"(closed form, {time.perf_counter() - start:.0f} s)**\n\n`{command}`"
    )
    text = table(rows, header)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return text


if __name__ == "__main__":
    main()
