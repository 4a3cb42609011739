"""The report's record of how the numbers were made: the benchmark's cells (status, wall time, commands
for what did not run), what trained each fold (its provenance), and the report's first lines when that
is not one commit's clean code."""

from __future__ import annotations

import json

from islesbench.reports.document import code, heading, para, table
from islesbench.reports.stats import is_finite
from islesbench.storage import provenance

# Fields in which the rCBF rule (no replicas) and an ensemble (averaging, no training) legitimately differ
# from the trained folds beside them; the claims compare them between trained arms (reports/claims.py).
_PER_PROCESS_FIELDS = ("machine.devices", "machine.replicas", "machine.threads")


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
        info.append(f"code `{_code_label(prov)}`")
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
    """What trained each fold: one row per distinct provenance (commit and diff hash, libraries, CPU, devices,
    threads) with the folds it trained, from each fold's config.json; folds that record none are named."""
    by_key, rows_of = {}, {}
    for g in groups:
        for run in g.runs:
            for fold in run.folds:
                records = run.fold_provenance.get(fold) or [None]
                label = f"{fold} (resumed: part)" if len(records) > 1 else str(fold)
                for record in records:
                    key = json.dumps(provenance.compared_values(record), sort_keys=True, default=str)
                    by_key.setdefault(key, record)
                    rows_of.setdefault(key, {}).setdefault(run.name, []).append(label)
    rows = []
    for key, record in sorted(by_key.items(), key=lambda kv: _code_label(kv[1])):
        runs = "; ".join(f"{name} fold {', '.join(folds)}" for name, folds in sorted(rows_of[key].items()))
        rows.append([_code_label(record), *_machine_cells(record), runs])
    if not rows:
        return []
    return [heading(3, "What produced the runs"),
            para("Per fold, from the fold's config.json, written when the fold trained (a resumed fold lists every "
                 "process that trained part of it). `+ changes` names the SHA-256 of the uncommitted changes to the "
                 "code (README: Provenance)."),
            table(["Code", "Libraries", "CPU", "Devices × replicas", "Threads (intra/inter)", "Folds"], rows)]


def provenance_warnings(groups: list, record: dict | None) -> list:
    """The report's first lines when its numbers cannot be traced to one commit: code with uncommitted
    changes (the benchmark's or any fold's), or folds trained under more than one provenance."""
    fold_records = [r for g in groups for r in g.provenance_records]
    dirty = [r for r in fold_records + [(record or {}).get("provenance")] if r and r.get("tree_modified")]
    blocks = []
    if dirty:
        labels = sorted({_code_label(r) for r in dirty})
        blocks.append(para("**Made from uncommitted code.** The benchmark or some folds ran from a tree whose code "
                           "differs from its commit (" + "; ".join(f"`{x}`" for x in labels) + "): these numbers "
                           "cannot be reproduced from a commit."))
    distinct = {json.dumps({k: v for k, v in provenance.compared_values(r).items() if k not in _PER_PROCESS_FIELDS},
                           sort_keys=True, default=str) for r in fold_records}
    if len(distinct) > 1:
        blocks.append(para(f"**Folds from {len(distinct)} different combinations of code, library versions and "
                           "CPU** (see What produced the runs): a claim whose two sides differ in them is not "
                           "counted as controlled."))
    return blocks


def _code_label(record: dict | None) -> str:
    if not record:
        return "not recorded"
    label = (record.get("commit") or "unknown commit")[:12]
    if record.get("tree_modified"):
        label += (f" + changes {record['diff_sha256'][:12]}" if record.get("diff_sha256")
                  else " + uncommitted changes (not hashed)")
    return label


def _machine_cells(record: dict | None) -> list:
    """Libraries, CPU, devices × replicas and threads of a provenance record, as table cells."""
    if not record:
        return ["", "", "", ""]
    versions = record.get("versions") or {}
    libraries = ", ".join(f"{k} {versions[k]}" for k in ("tensorflow", "keras", "numpy") if versions.get(k))
    machine = record.get("machine") or {}
    cpu = machine.get("cpu_model") or machine.get("platform") or "?"
    if machine.get("cpu_flags") is not None:
        cpu += f" ({' '.join(f for f in machine['cpu_flags'] if f.startswith(('amx', 'avx512_bf16'))) or 'no AMX/BF16'})"
    devices = ", ".join(machine.get("devices") or []) or "?"
    if machine.get("replicas"):
        devices += f" × {machine['replicas']}"
    threads = machine.get("threads") or {}
    return [libraries, cpu, devices, f"{threads['intra_op']}/{threads['inter_op']}" if threads else "?"]


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
