"""One benchmark cell's child process and what its end means, shared by both executors of the grid (the
local pool in islesbench.grid.runner, the Ray tasks of islesbench.grid.ray_executor).

`run_logged_child` runs the child to its end on this machine, its stdout and stderr appended to the cell's
log, and returns its exit status and last lines; `child_outcome` turns those into the cell's status
fields (done/partial is decided later from the folds on disk; not run for islesbench's one-line error;
crashed for a signal or any other status); `lost_outcome` is the crash of a cell whose child's host went
away for good (a Ray task lost with its node after its retries).
"""

from __future__ import annotations

import collections
import datetime as _dt
import signal
import subprocess
import sys
from pathlib import Path

DONE, PARTIAL, NOT_RUN, FAILED, CRASHED = "done", "partial", "not run", "failed", "crashed"
ERROR_EXIT = 2  # islesbench's one-line error (islesbench.cli)
LOGS = "logs"  # RUNS/logs/<cell>.log


def default_child_command() -> list[str]:
    """What stands for `islesbench` in a cell's command: this interpreter running the package."""
    return [sys.executable, "-m", "islesbench"]


def cell_log_path(runs_root, name: str) -> Path:
    """The log a cell's child writes (stdout and stderr, appended on every rerun)."""
    return Path(runs_root) / LOGS / f"{name}.log"


def run_logged_child(argv: list[str], env: dict, log_path: Path, command: str, echo=None, label: str = "",
                     cwd=None) -> tuple[int, list[str]]:
    """Run one cell's child to its end, its stdout and stderr appended to `log_path` (and, with `echo`, each
    line passed to echo(text) prefixed with `label`); (its exit status, its last non-empty output lines)."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque = collections.deque(maxlen=50)
    with open(log_path, "ab") as log:
        log.write(f"=== {_now()} {command}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        pending = b""
        try:
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                log.write(chunk)
                log.flush()
                pending += chunk
                *lines, pending = pending.split(b"\n")
                tail.extend(lines)
                if echo is not None:
                    for line in lines:
                        echo(f"[{label}] {line.decode(errors='replace').rstrip()}")
        finally:
            proc.stdout.close()
            returncode = proc.wait()
        if pending:
            tail.append(pending)
            if echo is not None:
                echo(f"[{label}] {pending.decode(errors='replace').rstrip()}")
        log.write(f"=== exit status {returncode}\n".encode())
    lines = [line.decode(errors="replace").split("\r")[-1].strip() for line in tail]
    return returncode, [line for line in lines if line]


def run_child_process(argv: list[str], env: dict, log_path: Path, command: str, echo=None, label: str = "") -> dict:
    """run_logged_child, then the status fields its end decides (child_outcome)."""
    returncode, lines = run_logged_child(argv, env, log_path, command, echo=echo, label=label)
    return child_outcome(returncode, lines, log_path, command)


def child_outcome(returncode: int, output_lines: list[str], log_path, command: str) -> dict:
    """The status fields of a cell whose child ended with `returncode` after printing `output_lines` (its
    last lines): {} for 0 (done or partial, as the folds on disk say); not run with islesbench's error line
    for 2; crashed for a signal (returncode < 0) or any other status, naming the log and the command."""
    if returncode == 0:
        return {}
    if returncode == ERROR_EXIT:
        errors = [line.split(": error: ", 1)[1] for line in output_lines
                  if line.startswith("islesbench ") and ": error: " in line]
        reason = errors[-1] if errors else (output_lines[-1] if output_lines else f"exited with status {ERROR_EXIT}")
        return {"status": NOT_RUN, "reason": reason, "log": str(log_path)}
    out = {}
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        out["signal"] = {"name": name, "number": number}
        how = f"killed by signal {name} ({number})"
    else:
        out["exit_status"] = returncode
        how = f"exited with status {returncode}"
        if output_lines:
            how += f" (last line: {output_lines[-1][:300]})"
    return {**_crashed(f"its child process {how}", log_path, command), **out}


def lost_outcome(what: str, log_path, command: str) -> dict:
    """The status fields of a cell whose child never reported an end (`what` happened to it: its Ray task
    was lost with its node after every retry, say): crashed, naming the log and the command."""
    return _crashed(what, log_path, command)


def _crashed(how: str, log_path, command: str) -> dict:
    return {"status": CRASHED, "log": str(log_path), "command": command,
            "reason": f"crashed: {how}. Its log: {log_path}. The same benchmark command again resumes it from "
                      f"its last finished epoch (so does its own command: {command})"}


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")
