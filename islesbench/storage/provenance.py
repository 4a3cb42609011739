"""What produced a result: the commit and, for a tree with changes, a hash of those changes; the command
line; the package versions; the machine (CPU model and the flags that change the numbers, devices,
replicas, threads). Recorded in benchmark.json and, per fold, in every fold's config.json when the fold
trains, so a committed number can always be traced to the code and machine that made it.

Only the code counts (SOURCE_PATHS: the folders the package installs from and its build files): a run's
own outputs, results, tests or the README in the tree do not change what runs. `tree_modified` is true
when the code differs from the commit; its diff hash (`diff_sha256`) is SHA-256 of
`git diff HEAD --binary -- SOURCE_PATHS` (every tracked change, staged or not) followed, for each
untracked file there that git does not ignore (sorted), by its path, a NUL, the SHA-256 of its content
and a newline: a new module changes what runs as surely as an edited one. Two records with the same
commit and the same diff hash ran the same code; a clean tree has no diff hash.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path

from islesbench import __version__
from islesbench.runtime import child_env

# CPU flags that change which kernels oneDNN and XLA run (bfloat16 through AMX or AVX-512 BF16, FP16,
# VNNI, the vector widths), so two CPUs that differ in them may give other numbers from the same code.
NUMERIC_CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                     "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16")
LIBRARIES = ("tensorflow", "keras", "numpy", "scipy", "nibabel", "keras_tuner")
# The fields of a fold's provenance that decide whether two folds ran the same code on the same kind of
# machine (reports/claims.py compares them): everything but the command line, the core count and the OS string.
COMPARED_FIELDS = ("commit", "diff_sha256", "versions", "machine.cpu_model", "machine.cpu_flags", "machine.devices",
                   "machine.replicas", "machine.threads")
_MAX_LISTED_FILES = 50
# What runs: the package folders (setup.cfg's package_dir) and the build files, as top-level git pathspecs.
SOURCE_PATHS = ("islesbench", "data_prep", "tuning", "reports", "setup.cfg", "pyproject.toml")


def provenance() -> dict:
    """What produced a result: the commit, the tree's changes and their hash, the command, versions, the CPU."""
    commit = _git("rev-parse", "HEAD")
    changes = tree_changes() if commit else {"tree_modified": None, "diff_sha256": None, "modified_files": []}
    versions = {"python": platform.python_version()}
    for module in LIBRARIES:
        try:
            versions[module] = __import__(module).__version__
        except Exception:  # a missing optional module is recorded as absent, not fatal
            versions[module] = None
    model, flags = cpu_description()
    return {"islesbench": __version__, "commit": commit, **changes,
            "command": " ".join(["islesbench", *sys.argv[1:]]) if sys.argv and "islesbench" in sys.argv[0] else None,
            "versions": versions,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "cpu_model": model,
                        "cpu_flags": flags}}


def fold_provenance(devices: list | None, replicas: int | None) -> dict:
    """provenance() of a fold as it starts training: plus the devices it trains on, the strategy's replicas
    (None for the rCBF rule, which trains nothing) and TensorFlow's thread pools."""
    record = provenance()
    record["machine"].update(devices=devices, replicas=replicas, threads=child_env.effective_threads())
    return record


def tree_changes(repo=None) -> dict:
    """tree_modified, diff_sha256 (None for a clean tree; the module docstring says what it hashes) and the
    changed files (at most 50 named) of the code in the git tree at `repo` (default: the one holding islesbench).

    Args:
        repo: a folder inside a git work tree; None for islesbench's own.
    """
    specs = [f":/{p}" for p in SOURCE_PATHS]
    diff = _git_bytes("diff", "HEAD", "--binary", "--", *specs, cwd=repo) or b""
    untracked = sorted(p for p in (_git_bytes("ls-files", "--others", "--exclude-standard", "--full-name", "-z", "--",
                                              *specs, cwd=repo) or b"").decode("utf-8", "replace").split("\0") if p)
    names = (_git("diff", "HEAD", "--name-only", "--", *specs, cwd=repo) or "").splitlines()
    if not diff and not untracked:
        return {"tree_modified": False, "diff_sha256": None, "modified_files": []}
    root = Path(_git("rev-parse", "--show-toplevel", cwd=repo) or ".")
    digest = hashlib.sha256(diff)
    for path in untracked:
        digest.update(path.encode() + b"\0" + _file_sha256(root / path).encode() + b"\n")
    listed = names + [f"{p} (untracked)" for p in untracked]
    return {"tree_modified": True, "diff_sha256": digest.hexdigest(),
            "modified_files": listed[:_MAX_LISTED_FILES] + ([f"... {len(listed) - _MAX_LISTED_FILES} more"]
                                                           if len(listed) > _MAX_LISTED_FILES else [])}


@functools.lru_cache(maxsize=1)
def cpu_description(cpuinfo: str | None = None) -> tuple[str | None, list]:
    """(the CPU model name, its NUMERIC_CPU_FLAGS) from /proc/cpuinfo; elsewhere platform's processor name."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return (platform.processor() or None), []
    model, flags = None, set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model is None:
            model = value.strip()
        elif key.strip() == "flags":
            flags.update(value.split())
    return model or platform.processor() or None, [f for f in NUMERIC_CPU_FLAGS if f in flags]


def compared_values(record: dict | None) -> dict:
    """COMPARED_FIELDS of a provenance record, {field: value}, `versions` spread out as `versions.<library>`;
    a missing record is 'not recorded' in every field."""
    if not record:
        return {f: "not recorded" for f in COMPARED_FIELDS}
    out = {}
    for name in COMPARED_FIELDS:
        value = record
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if name == "versions" and isinstance(value, dict):
            out.update({f"versions.{k}": v for k, v in sorted(value.items())})
        else:
            out[name] = value
    if record.get("tree_modified") and not record.get("diff_sha256"):
        # Recorded before the diff was hashed: the changes are unknown, so equal to nothing else.
        out["diff_sha256"] = f"uncommitted changes, not hashed ({record.get('commit')})"
    return out


def earlier_records(previous_fold_config: dict, current: dict) -> list:
    """The provenance records of a fold's earlier config.json (its `provenance` and `provenance_earlier`)
    that differ from `current` in COMPARED_FIELDS, without repeats: who else trained part of a resumed fold."""
    candidates = [previous_fold_config.get("provenance") or {}] + list(previous_fold_config.get("provenance_earlier")
                                                                     or [])
    seen, out = [compared_values(current)], []
    for record in candidates:
        if not record:
            continue
        values = compared_values(record)
        if values not in seen:
            seen.append(values)
            out.append(record)
    return out


def _git(*argv, cwd=None) -> str | None:
    out = _git_bytes(*argv, cwd=cwd)
    return (out.decode("utf-8", "replace").strip() or None) if out is not None else None


def _git_bytes(*argv, cwd=None) -> bytes | None:
    try:
        done = subprocess.run(["git", *argv], cwd=cwd or Path(__file__).resolve().parent, capture_output=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:  # a file gone between listing and reading: record that, not a crash
        return f"unreadable ({exc.strerror})"
    return digest.hexdigest()
