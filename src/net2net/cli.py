"""Command-line interface: ``net2net train`` and ``net2net demo`` (more commands arrive with the translation pipeline)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from .apps.demo import DemoSettings, run_demo

    settings = DemoSettings(steps=args.steps, seed=args.seed)
    metrics = run_demo(out_dir=args.out, cache_dir=args.cache_dir, settings=settings, retrain=args.retrain)
    summary = {k: metrics[k] for k in ("png", "test_nats_per_dim", "classifier_accuracy_real_test",
                                       "classifier_accuracy_samples", "diversity_samples", "diversity_real_test",
                                       "trained_now", "train_seconds")}
    print(json.dumps(summary, indent=2))
    return 0


def _train(args: argparse.Namespace) -> int:
    from .training.run import ConfigError, train_from_config

    configs = [a for a in args.items if "=" not in a]
    overrides = [a for a in args.items if "=" in a]
    if not configs:
        print("net2net train: error: give at least one YAML config file before the key=value overrides", file=sys.stderr)
        return 2
    try:
        log_dir = train_from_config(configs, overrides, log_dir=args.log_dir, resume=not args.no_resume)
    except ConfigError as e:
        if args.verbose:  # -v: the full traceback, for errors raised deep inside a constructor
            raise
        print(f"net2net train: config error: {e}", file=sys.stderr)
        return 2
    print(f"net2net train: done; outputs in {log_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="net2net",
        description="Network-to-network translation with conditional invertible neural networks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser(
        "train",
        help="train a model from YAML configs (e.g. the autoencoder: configs/autoencoder/fashion_mnist.yaml)",
        description="Train the model of one or more YAML configs (merged in order) with key=value overrides "
        "(e.g. lightning.trainer.max_steps=100 data.params.batch_size=32). Writes checkpoints, image grids, "
        "CSV logs, the merged config and, for autoencoders, autoencoder.safetensors into the log folder, and "
        "resumes from its checkpoints/last.ckpt when present.",
    )
    train.add_argument("items", nargs="+", metavar="CONFIG_OR_OVERRIDE", help="YAML files, then key=value overrides")
    train.add_argument("--log-dir", default=None, help="output folder (default: runs/<stem of the first config>)")
    train.add_argument("--no-resume", action="store_true", help="start from step 0 even if a checkpoint exists")
    train.set_defaults(func=_train)

    demo = sub.add_parser(
        "demo",
        help="train (or reuse) a label-to-digits cINN and write a PNG of samples",
        description="Translate class labels into 8x8 handwritten digits (scikit-learn) with a cINN: trains in a "
        "few minutes on 2 CPU cores the first time, reuses the cached weights afterwards, writes "
        "OUT/label_to_digits.png (one row per class) and OUT/metrics.json.",
    )
    demo.add_argument("--out", default="outputs/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--cache-dir", default=None, help="where trained weights are kept (default: ~/.cache/net2net/demo)")
    demo.add_argument("--steps", type=int, default=1500, help="training steps (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--retrain", action="store_true", help="train again even if cached weights exist")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``net2net`` console script."""
    parser = build_parser()
    # `train` takes key=value overrides anywhere on the line (also after --log-dir); other commands take none
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command != "train" or any(a.startswith("-") for a in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.items = [*args.items, *extra]
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # Lightning's banner lines (accelerators, tips) are noise for a CLI user
        import lightning.pytorch  # noqa: F401  (Lightning sets its loggers' levels when imported)

        for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if getattr(args, "steps", 1) < 1:
        print(f"net2net: error: --steps must be a positive integer, got {args.steps}", file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
