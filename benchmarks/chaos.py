"""Fault injection: SIGKILL `prepare`, `run`, `tune` and `benchmark` at seeded random moments, re-run each
until it finishes, and compare with an uninterrupted run.

    python benchmarks/chaos.py [--work /tmp/islesbench-chaos] [--seed 0] [--kills 6] [--commands prepare,run,tune,benchmark]

On a tiny synthetic cohort (6 training cases at 48², prepared on a 32² grid into 2 folds) with tiny
models (a 4-wide U-Net, 4 epochs of 2 steps; 2 random-search trials of 2 epochs; a 3-cell grid with an
ensemble), each command runs once uninterrupted (the reference, timed: T), then again in another
folder, killed with SIGKILL (the whole process group, as a crash would) after a seeded random
fraction of T, until `--kills` kills have landed: in episodes that each start from an empty folder,
kill the command up to 3 times, then re-run it until it exits 0. Every run is the same CLI command.
After each episode:

- prepared data: every file (records, manifest, splits, patients) byte-identical to the reference;
- every fold: history.csv has exactly one row per epoch, its values (all but the wall-clock `time`)
  equal to the reference's; metrics.csv, summary.json and threshold.json byte-identical; DONE present
  and no backup/ left;
- tune: best_hparams.json equal but for timings; benchmark: results.csv of the report byte-identical;
- no temporary file (`.*.tmp-*`) anywhere.

Prints kills, re-runs and mismatches per command; exits 1 on any mismatch or failed re-run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from islesbench.runtime.child_env import child_env

TINY = {"model": {"base_width": 4, "depth": 2}, "data": {"input_size": 32},
        "train": {"batch_size": 4, "steps_per_epoch": 2, "epochs": 4}}
GRID = {"cells": [{"arch": "unet", "loss": "focal"}, {"arch": "unet", "loss": "ce"}, {"arch": "threshold"}],
        "overrides": TINY, "ensemble": {"top_k": 2, "name": "ensemble-top2"}}
COMMANDS = ("prepare", "run", "tune", "benchmark")
EXACT = ("metrics.csv", "summary.json", "threshold.json", "manifest.json", "splits.json", "patients.json",
         "results.csv")
VOLATILE = ("seconds", "time", "worker", "rss_mb", "memory_mb", "started", "finished", "elapsed")


def command_args(command: str, root: Path, shared: Path) -> list:
    """The CLI arguments of `command` writing under `root`, reading the shared cohort and prepared data."""
    if command == "prepare":
        return ["prepare", "--data", shared / "cohort", "--out", root / "prepared", "--folds", 2, "--grid", 32]
    if command == "run":
        return ["run", "--arch", "unet", "--data", shared / "prepared", "--config", shared / "tiny.json",
                "--out", root / "runs"]
    if command == "tune":
        return ["tune", "--arch", "unet", "--loss", "focal", "--tuner", "random", "--max-trials", 2, "--folds", 2,
                "--data", shared / "prepared", "--config", shared / "tiny.json", "--epochs", 2, "--out", root / "tune"]
    if command == "benchmark":
        return ["benchmark", "--data", shared / "prepared", "--profile", "quick", "--grid", shared / "grid.json",
                "--folds", 2, "--out", root / "bench"]
    raise ValueError(command)


def output_of(command: str, root: Path) -> Path:
    return root / {"prepare": "prepared", "run": "runs", "tune": "tune", "benchmark": "bench"}[command]


def attempt(args: list, log: Path, kill_after: float | None = None) -> tuple:
    """Run `islesbench ARGS`; with `kill_after`, SIGKILL its process group then. (exit status or 'killed', s)."""
    t0 = time.time()
    with open(log, "a") as out:
        out.write(f"\n$ islesbench {' '.join(map(str, args))}  (kill after {kill_after})\n")
        out.flush()
        proc = subprocess.Popen([sys.executable, "-m", "islesbench", *map(str, args)], env=child_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            _reap_group(proc.pid)
            return "killed", time.time() - t0
    return rc, time.time() - t0


def _reap_group(pgid: int) -> None:
    """Wait until no process of the killed group is left (children die with it: SIGKILL went to all)."""
    for _ in range(100):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def setup(work: Path, seed: int) -> Path:
    """The shared cohort and its prepared data (built once), the tiny config and grid."""
    shared = work / "shared"
    if (shared / "READY").is_file():
        return shared
    shutil.rmtree(shared, ignore_errors=True)
    shared.mkdir(parents=True)
    (shared / "tiny.json").write_text(json.dumps(TINY))
    (shared / "grid.json").write_text(json.dumps(GRID))
    for args in (["synth", "--out", shared / "cohort", "--cases", 6, "--seed", seed, "--size", 48],
                 ["prepare", "--data", shared / "cohort", "--out", shared / "prepared", "--folds", 2, "--grid", 32]):
        rc, _ = attempt(args, shared / "setup.log")
        if rc != 0:
            raise SystemExit(f"setup failed ({args[0]}); see {shared / 'setup.log'}")
    (shared / "READY").write_text("ok\n")
    return shared


def chaos_command(command: str, work: Path, shared: Path, rng: random.Random, kills: int,
                  kills_per_episode: int = 3, log=print) -> dict:
    """Reference run, then episodes until `kills` SIGKILLs landed: each episode starts from an empty
    output folder, kills the command up to `kills_per_episode` times at seeded random moments (a fraction
    of the reference time), re-runs it to the end and compares with the reference."""
    log = log or (lambda *_: None)
    ref_root, chaos_root = work / "reference", work / "chaos"
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(output_of(command, ref_root), ignore_errors=True)
    rc, reference_s = attempt(command_args(command, ref_root, shared), logs / f"{command}.reference.log")
    if rc != 0:
        return {"command": command, "error": f"reference run failed (exit {rc}); see {logs}"}
    log(f"{command}: reference run {reference_s:.1f} s")
    args = command_args(command, chaos_root, shared)
    chaos_log = logs / f"{command}.chaos.log"
    done_kills, reruns, episodes, moments, problems = 0, 0, 0, [], []
    while done_kills < kills and episodes < 2 * kills:
        episodes += 1
        shutil.rmtree(output_of(command, chaos_root), ignore_errors=True)
        starts, finished = 0, False
        for _ in range(kills_per_episode):
            if done_kills >= kills:
                break
            moment = rng.uniform(0.05, 1.0) * reference_s
            outcome, _ = attempt(args, chaos_log, kill_after=moment)
            starts += 1
            if outcome != "killed":
                finished = outcome == 0
                log(f"{command}: episode {episodes}: finished (exit {outcome}) before the kill at {moment:.1f} s")
                break
            done_kills += 1
            moments.append(round(moment, 2))
            log(f"{command}: episode {episodes}: SIGKILL at {moment:.1f} s ({done_kills}/{kills})")
        for _ in range(3):
            if finished:
                break
            outcome, seconds = attempt(args, chaos_log)
            starts += 1
            finished = outcome == 0
            log(f"{command}: episode {episodes}: re-run to the end: exit {outcome} ({seconds:.1f} s)")
        reruns += starts - 1
        found = [] if finished else [f"the re-run did not finish (see {chaos_log})"]
        found += compare(output_of(command, ref_root), output_of(command, chaos_root))
        problems += [f"episode {episodes}: {p}" for p in found]
        log(f"{command}: episode {episodes}: {len(found)} mismatch(es)")
    return {"command": command, "kills": done_kills, "reruns": reruns, "episodes": episodes,
            "kill_moments_s": moments, "reference_s": round(reference_s, 1), "mismatches": problems}


# --------------------------------------------------------------------------------------------------
# comparing a killed-and-resumed output with the reference


def _history(path: Path) -> list:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(f)]


def _strip_volatile(obj):
    if isinstance(obj, dict):
        return {k: _strip_volatile(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip_volatile(v) for v in obj]
    return obj


def compare(reference: Path, resumed: Path) -> list:
    """Every way `resumed` differs from `reference` (empty: equal as the module docstring defines)."""
    problems = [f"temporary file left: {p}" for p in resumed.rglob(".*.tmp-*")]
    problems += [f"backup/ left in a finished fold: {p}" for p in resumed.rglob("backup") if (p.parent / "DONE").is_file()]
    ref_files = {p.relative_to(reference) for p in reference.rglob("*") if p.is_file()}
    got_files = {p.relative_to(resumed) for p in resumed.rglob("*") if p.is_file()}
    for rel in sorted(ref_files):
        a, b = reference / rel, resumed / rel
        in_prepared = "records" in rel.parts or rel.name in EXACT
        if rel.name == "history.csv":
            if not b.is_file():
                problems.append(f"{rel}: missing")
                continue
            ha, hb = _history(a), _history(b)
            epochs = [int(r["epoch"]) for r in hb]
            if epochs != list(range(len(ha))):
                problems.append(f"{rel}: epochs {epochs}, expected 0..{len(ha) - 1} once each")
            elif ha != hb:
                diff = next(i for i, (x, y) in enumerate(zip(ha, hb)) if x != y)
                problems.append(f"{rel}: epoch {diff} differs: {ha[diff]} vs {hb[diff]}")
        elif rel.name == "DONE":
            if not b.is_file():
                problems.append(f"{rel}: fold not finished")
        elif rel.name == "best_hparams.json":
            if not b.is_file() or _strip_volatile(json.loads(a.read_text())) != _strip_volatile(json.loads(b.read_text())):
                problems.append(f"{rel}: differs")
        elif in_prepared and (rel.parent.name != "report" or rel.name == "results.csv"):
            if not b.is_file():
                problems.append(f"{rel}: missing")
            elif a.read_bytes() != b.read_bytes():
                problems.append(f"{rel}: not byte-identical")
    extra = sorted(str(r) for r in got_files - ref_files if ("records" in r.parts or r.name in EXACT))
    problems += [f"{r}: not in the reference" for r in extra]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/islesbench-chaos", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kills", type=int, default=6, help="SIGKILLs per command")
    parser.add_argument("--commands", default=",".join(COMMANDS))
    args = parser.parse_args()
    t0 = time.time()
    shared = setup(args.work, args.seed)
    rng = random.Random(args.seed)
    summaries = []
    for command in [c.strip() for c in args.commands.split(",") if c.strip()]:
        summary = chaos_command(command, args.work, shared, rng, args.kills)
        summaries.append(summary)
        for problem in summary.get("mismatches", []):
            print(f"  MISMATCH {command}: {problem}")
        if "error" in summary:
            print(f"  ERROR {command}: {summary['error']}")
    (args.work / f"chaos-seed{args.seed}.json").write_text(json.dumps(summaries, indent=1))
    print(f"\nchaos, seed {args.seed}, {time.time() - t0:.0f} s in all")
    print(f"{'command':<11}{'kills':>7}{'re-runs':>9}{'episodes':>10}{'mismatches':>12}{'reference s':>13}")
    for s in summaries:
        if "error" in s:
            print(f"{s['command']:<11}{'-':>7}{'-':>9}{'error':>12}")
            continue
        print(f"{s['command']:<11}{s['kills']:>7}{s['reruns']:>9}{s['episodes']:>10}{len(s['mismatches']):>12}"
              f"{s['reference_s']:>13}")
    total = [s for s in summaries if "error" not in s]
    print(f"{'total':<11}{sum(s['kills'] for s in total):>7}{sum(s['reruns'] for s in total):>9}"
          f"{sum(s['episodes'] for s in total):>10}{sum(len(s['mismatches']) for s in total):>12}")
    failed = any("error" in s or s["mismatches"] for s in summaries)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
