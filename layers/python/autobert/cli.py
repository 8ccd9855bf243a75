"""The ``autobert`` command line.

Each subcommand is a small function taking the parsed arguments and returning an exit code; domain errors become one
line on stderr and exit code 2, never a stack trace.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from autobert.config import REPO_ROOT, get_settings
from autobert.errors import AutobertError

Command = Callable[[argparse.Namespace], int]


# ------------------------------------------------------------------------------------------------- data + training
def cmd_prepare(args: argparse.Namespace) -> int:
    from autobert.data import prepare

    settings = get_settings()
    out = Path(args.out) if args.out else settings.home / "prepared"
    _, report = prepare(args.source or settings.data_source, out, settings.cache_dir,
                        min_class_count=args.min_class_count or settings.min_class_count,
                        clean=args.clean or settings.clean, seed=settings.seed)
    print(json.dumps({"out": str(out), **report.__dict__}, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Run the training job as a local process (training/train.py, the same script SageMaker runs)."""
    cmd = [sys.executable, str(REPO_ROOT / "training" / "train.py"), *args.train_args]
    return subprocess.call(cmd)


# ---------------------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autobert", description="Self-improving BERT text classifier.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("prepare", help="Load 20 Newsgroups, preprocess and export the cleaned dataset (Parquet).")
    p.add_argument("--source", help="A .tar.gz, an extracted folder or a URL (default: AUTOBERT_DATA_SOURCE, a local "
                   "copy, or the canonical public archive).")
    p.add_argument("--out", help="Output folder (default: <home>/prepared).")
    p.add_argument("--min-class-count", type=int, default=None, help="Drop categories with fewer documents.")
    p.add_argument("--clean", action="store_true", help="Strip headers, signature footers and quoted replies.")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="Run training/train.py locally; arguments after 'train' are passed through.")
    p.add_argument("train_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_train)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AutobertError as exc:
        print(f"autobert: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
