"""Average the validation probability maps of several runs: `islesbench ensemble`.

The paper's final submission was an ensemble. Under cross-validation the leak-free ensemble averages,
case by case, the probability maps that the member runs' own validation folds produced (every member
saw the case only as validation). Each case is thresholded at the mean of the members' thresholds for
the fold that validated it (each chosen on training cases). The output is an ordinary run folder in
the results layout, one fold_<k> per fold of the first member, so reports read it like any run.
Members must come from the same cohort, the same prepared data and the same folds (the splits'
fingerprint, and every shared case validated in the same fold); otherwise the ensemble is refused with
the two runs and the difference named.
"""

from __future__ import annotations

from pathlib import Path

from islesbench.inference.ensemble import ensemble_runs


def configure_parser(parser) -> None:
    parser.add_argument("runs", nargs="+", help="run folders (RUNS/<config-name>) to average")
    parser.add_argument("--out", required=True, help="output run folder, e.g. runs/ensemble")
    parser.add_argument("--force", action="store_true", help="recompute folds already finished")


def run_command(args) -> int:
    summary = ensemble_runs([Path(r) for r in args.runs], Path(args.out), force=args.force)
    print(f"ensemble of {len(args.runs)} run(s): mean Dice {summary['metrics']['dice']['mean']:.3f} -> {args.out}")
    return 0
