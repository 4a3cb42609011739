"""The report's record of how the numbers were made: the benchmark's cells (status, wall time, commands
for what did not run) and the commit that produced each run."""

from __future__ import annotations

from islesbench.reports.document import code, heading, para, table
from islesbench.reports.stats import is_finite


def benchmark_blocks(record: dict | None) -> list:
    """The benchmark's cells, their status and wall time, what produced them, and commands for the missing."""
    if not record:
        return []
    blocks = [heading(2, "Benchmark cells")]
    info = [f"profile `{record.get('profile', '?')}`", f"data `{record.get('data', '?')}`",
            f"seeds {record.get('seeds', 1)}"]
    if record.get("wall_seconds") is not None:
        info.append(f"total wall time {fmt_seconds(record['wall_seconds'])}")
    if record.get("finished"):
        info.append(f"finished {record['finished']}")
    prov = record.get("provenance") or {}
    if prov:
        versions = ", ".join(f"{k} {v}" for k, v in (prov.get("versions") or {}).items() if v)
        info.append(f"commit `{(prov.get('commit') or 'unknown')[:12]}`"
                    + (" (with uncommitted changes)" if prov.get("tree_modified") else ""))
        if prov.get("command"):
            info.append(f"command `{prov['command']}`")
        info.append(versions)
    blocks.append(para("; ".join(info) + "."))
    cells = record.get("cells", [])
    rows = [[c.get("name", "?"), c.get("status", "?"), fmt_seconds(c.get("seconds")), c.get("folds_trained", ""),
             c.get("note") or c.get("reason") or ""] for c in cells]
    if rows:
        blocks.append(table(["Cell", "Status", "Wall time", "Folds run now", "Note"], rows))
    missing = [c for c in cells if c.get("status") != "done"]
    if missing:
        blocks.append(heading(3, "Not run"))
        for c in missing:
            blocks.append(para(f"**{c.get('name', '?')}** ({c.get('status', '?')}): "
                               f"{c.get('reason') or 'no reason recorded'}"))
            if c.get("command"):
                blocks.append(code(c["command"]))
    return blocks


def provenance_blocks(groups: list) -> list:
    """Which commit (and command) produced each run, from its config.json; runs that record none are named."""
    by_commit = {}
    for g in groups:
        for run in g.runs:
            prov = run.config.get("provenance") or {}
            key = (prov.get("commit") or "not recorded") + (" (uncommitted changes)" if prov.get("tree_modified") else "")
            by_commit.setdefault(key, []).append(run.name)
    rows = [[commit[:12] + commit[40:] if len(commit) >= 40 else commit, ", ".join(sorted(names))]
            for commit, names in sorted(by_commit.items())]
    return [heading(3, "What produced the runs"), table(["Commit", "Runs"], rows)] if rows else []


def first_sentence(reason: str | None) -> str:
    """A cell's reason cut to its first sentence, for a table; the whole advice is under "Not run"."""
    lines = (reason or "").splitlines()
    return lines[0].split(" (")[0].split(". ")[0] if lines else ""


def fmt_seconds(s) -> str:
    """`42 s` or `3.5 min`; empty for a missing value."""
    if s is None or not is_finite(s):
        return ""
    s = float(s)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"
