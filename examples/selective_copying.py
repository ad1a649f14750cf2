"""Selective copying: why Mamba's input-dependent B, C, Δ matter (Gu & Dao 2023 §3.1, §4.1.1, Fig. 2).

The task. A sequence of ``seq_len`` tokens is mostly noise (token 0); ``n_memorize`` content tokens
(ids 2 … 2 + n_content − 1) sit at random positions. Then come ``n_memorize`` answer positions (the
marker token 1), where the model must emit the content tokens in their order of appearance::

    input   0 0 5 0 0 0 3 0 0 7 0 0 0 4 0 0 | 1 1 1 1
    target  · · · · · · · · · · · · · · · · | 5 3 7 4      (· not scored)

Because the spacing changes from sequence to sequence, a linear time-invariant SSM (S4D: one fixed
convolution kernel per channel) cannot simply skip the noise and keep the content; Mamba's selection
mechanism can (Δ, B, C depend on the token: a noise token can get Δ ≈ 0 and leave the state alone).
Accuracy is the fraction of answer tokens correct on fresh held-out sequences.

The model: ``nn.Embedding(vocab, d_embed)`` → :class:`ssmforecast.nn.Backbone` (``layer="mamba"`` or
``"s4d"``, ``d_output = vocab``) → logits; cross-entropy on the answer positions only; Adam.

Run: ``python examples/selective_copying.py`` (the paper's vocabulary of 16 and 16 tokens to copy,
at length 64 instead of 4096; ``--seq-len 256`` for a longer one), ``--quick`` for the small
configuration of the test suite.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from ssmforecast.nn import Backbone

NOISE, MARKER = 0, 1  # token ids; content tokens are 2 … 2 + n_content − 1


def make_batch(
    batch: int, seq_len: int, n_memorize: int, n_content: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random selective-copying sequences → tokens (batch, seq_len + n_memorize), targets (batch, n_memorize).

    Content tokens are drawn uniformly from the ``n_content`` ids and placed at ``n_memorize``
    distinct random positions of the first ``seq_len``; the answer positions hold ``MARKER``.
    """
    if not 1 <= n_memorize <= seq_len:
        raise ValueError(f"n_memorize must lie in [1, seq_len={seq_len}], got {n_memorize}")
    content = torch.randint(2, 2 + n_content, (batch, n_memorize), generator=generator)  # (batch, M)
    scores = torch.rand(batch, seq_len, generator=generator)  # (batch, seq_len)
    positions = scores.topk(n_memorize, dim=1).indices.sort(dim=1).values  # (batch, M), increasing
    tokens = torch.full((batch, seq_len + n_memorize), NOISE, dtype=torch.long)  # (batch, seq_len + M)
    tokens.scatter_(1, positions, content)
    tokens[:, seq_len:] = MARKER
    return tokens, content


class CopyModel(nn.Module):
    """Embedding → Backbone → logits over the vocabulary; tokens (batch, L) → (batch, L, vocab)."""

    def __init__(self, vocab: int, layer: str, d_model: int, n_layers: int, d_embed: int, layer_kwargs: dict):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_embed)
        self.backbone = Backbone(d_embed, d_model, n_layers, layer=layer, d_output=vocab, layer_kwargs=layer_kwargs)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.embed(tokens))  # (batch, L, vocab)


def accuracy(model: nn.Module, tokens: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of answer tokens predicted correctly (argmax at the last n_memorize positions)."""
    model.eval()
    with torch.no_grad():
        logits = model(tokens)[:, -targets.shape[1] :]  # (batch, M, vocab)
    model.train()
    return (logits.argmax(-1) == targets).float().mean().item()


def train_and_evaluate(
    layer: str,
    *,
    seq_len: int = 64,
    n_memorize: int = 16,
    n_content: int = 14,
    d_model: int = 32,
    n_layers: int = 2,
    d_embed: int = 32,
    steps: int = 3000,
    batch: int = 32,
    lr: float = 1e-2,
    max_grad_norm: float | None = 1.0,
    n_test: int = 512,
    seed: int = 0,
    layer_kwargs: dict | None = None,
) -> dict:
    """Train one model for ``steps`` Adam steps on fresh batches; return accuracy, time and size.

    ``layer_kwargs`` go to the sequence layer (e.g. ``{"d_state": 8}``); gradients are clipped to
    ``max_grad_norm`` (None: no clipping). Seeded: ``torch.manual_seed(seed)`` for the weights, one
    ``torch.Generator`` for the training batches and another for the held-out test set, so a run is
    repeatable on the same machine and thread count.

    Returns
    -------
    dict
        ``layer``, ``accuracy`` (held-out answer tokens), ``train_loss`` (last batch), ``seconds``
        (training wall time) and ``n_params``.
    """
    torch.manual_seed(seed)
    vocab = n_content + 2
    model = CopyModel(vocab, layer, d_model, n_layers, d_embed, layer_kwargs or {})
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    train_gen = torch.Generator().manual_seed(seed)
    test_gen = torch.Generator().manual_seed(seed + 10_000)
    test_tokens, test_targets = make_batch(n_test, seq_len, n_memorize, n_content, test_gen)
    start = time.perf_counter()
    for _ in range(steps):
        tokens, targets = make_batch(batch, seq_len, n_memorize, n_content, train_gen)
        logits = model(tokens)[:, -n_memorize:]  # (batch, M, vocab)
        loss = F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
    seconds = time.perf_counter() - start
    return {
        "layer": layer,
        "accuracy": accuracy(model, test_tokens, test_targets),
        "train_loss": loss.item(),
        "seconds": seconds,
        "n_params": sum(p.numel() for p in model.parameters()),
    }


#: The small configuration run by the default test suite (``tests/nn/test_selective_copying.py``).
QUICK = dict(
    seq_len=32, n_memorize=4, n_content=8, d_model=32, n_layers=2, d_embed=16, steps=500, batch=32, lr=1e-2, seed=2
)
#: Layer settings of the quick run: Mamba with a small state and the sequential scan (faster than the
#: chunked one at L = 36 on a CPU), S4D with its default state (about as many parameters in all).
QUICK_LAYER_KWARGS = {
    "mamba": {"d_state": 4, "scan_method": "sequential"},
    "s4d": {"d_state": 64},
    "s4": {"d_state": 64},
}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq-len", type=int, default=64, help="noise-and-content length (default 64)")
    parser.add_argument("--n-memorize", type=int, default=16, help="content tokens to copy (default 16)")
    parser.add_argument("--n-content", type=int, default=14, help="content token ids; + noise + marker = vocabulary (default 14)")
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--d-state", type=int, default=None, help="state size (default: Mamba 8, S4D/S4 64)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--layers", nargs="+", default=["mamba", "s4d"], choices=["mamba", "s4d", "s4"])
    parser.add_argument("--quick", action="store_true", help="the small configuration of the test suite")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.quick:
        config, layer_kwargs = dict(QUICK), QUICK_LAYER_KWARGS
    else:
        config = dict(
            seq_len=args.seq_len, n_memorize=args.n_memorize, n_content=args.n_content, d_model=args.d_model,
            n_layers=args.n_layers, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
        )  # fmt: skip
        default_state = {"mamba": 8, "s4d": 64, "s4": 64}
        layer_kwargs = {k: {"d_state": args.d_state or n} for k, n in default_state.items()}
    print("selective copying:", ", ".join(f"{k}={v}" for k, v in config.items()), flush=True)
    results = []
    for layer in args.layers:
        r = train_and_evaluate(layer, **config, layer_kwargs=layer_kwargs[layer])
        print(f"{layer:>6} {layer_kwargs[layer]}: accuracy {r['accuracy']:.3f}  train loss {r['train_loss']:.3f}  "
              f"{r['seconds']:.1f} s  {r['n_params']} parameters", flush=True)  # fmt: skip
        results.append(r)
    return results


if __name__ == "__main__":
    main()
