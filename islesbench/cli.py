"""The `islesbench` command line: one sub-command per pipeline stage.

The command modules (islesbench.commands, one per command) are the one place that joins the stages
(data_prep → islesbench → tuning/reports); the library modules never import upward, nor the commands. Each
command module exposes `configure_parser(parser)` and `run_command(args) -> int`, its docstring is the
command's --help description, and it keeps TensorFlow imports inside functions so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# TensorFlow's start-up chatter (oneDNN, CUDA probing) is not for users; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from islesbench.errors import IslesbenchError
from islesbench.runtime import child_env, console

# name -> (module, one-line help). Order is the order of the pipeline.
COMMANDS = {
    "synth": ("islesbench.commands.synth", "write a synthetic CTP cohort (ISLES 2018 slabs or whole-brain ISLES'24 BIDS)"),
    "prepare": ("islesbench.commands.prepare", "validate a cohort and write slice/volume TFRecords and folds"),
    "pretrain": ("islesbench.commands.pretrain", "self-supervised pretraining of PSPNet's encoder on unlabelled CTP maps"),
    "run": ("islesbench.commands.run", "train and validate one configuration over the folds (resumable)"),
    "predict": ("islesbench.commands.predict", "segment ISLES 2018 or ISLES'24 cases with a trained model"),
    "ensemble": ("islesbench.commands.ensemble", "average the probability maps of several runs and evaluate"),
    "evaluate": ("islesbench.commands.evaluate", "ISLES metrics of predicted masks against reference masks"),
    "export": ("islesbench.commands.export", "write a cohort as an nnU-Net v2 raw dataset on islesbench's folds"),
    "import": ("islesbench.commands.import_predictions",
               "turn predictions made elsewhere (nnU-Net, ...) into a run folder the report reads"),
    "tune": ("islesbench.commands.tune", "cross-validated KerasTuner search for one model/loss pair"),
    "benchmark": ("islesbench.commands.benchmark", "run the paper's comparison grid over all folds"),
    "report": ("islesbench.commands.report", "comparison tables, statistics and figures from a runs folder"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; with `only`, just that sub-command's module is imported and configured."""
    parser = argparse.ArgumentParser(
        prog="islesbench",
        description="Ischemic stroke lesion segmentation benchmark on CT perfusion (ISLES 2018 and ISLES'24 layouts).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `islesbench COMMAND --help` for a command's options and defaults.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        p = sub.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.configure_parser(p)
        p.add_argument("--verbose", action="store_true",
                       help="show TensorFlow's start-up and library log lines (hidden by default)")
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `islesbench` console script."""
    entry = argv is None  # the console script, not a call from Python (whose fd 2 is not ours)
    argv = sys.argv[1:] if argv is None else list(argv)
    if entry:
        child_env.die_with_parent()  # a benchmark cell's child never outlives its `benchmark`
        # Before anything imports TensorFlow: its C++ start-up lines reach fd 2 before Python logging.
        console.quiet_tensorflow(verbose="--verbose" in argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        if args.command in console.DEVICE_COMMANDS:
            print(f"islesbench {args.command}: {console.device_line()}", flush=True)
        return int(args._module.run_command(args) or 0)
    except IslesbenchError as exc:
        print(f"islesbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"islesbench {args.command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
