"""What a run's config.json says was chosen on, or had seen, the cases it is scored on: the flags every table
and claim shows beside a row (`selection_flags`).

A run is flagged when its hyperparameters were tuned on the folds it is scored on (`tuning.nested` false,
islesbench/training/hparams.py), when its encoder's pretraining read some of its validation cases, and when
what the pretraining read is unknown (no record tied to the weights; islesbench/storage/pretrain_records.py).
An ensemble (islesbench/inference/ensemble.py) records its members' flags in `member_flags`, so an ensemble of
a flagged member is flagged too, whatever its own selection.
"""

from __future__ import annotations

from islesbench.storage.pretrain_records import LEAK_UNKNOWN

NON_NESTED = "tuned on the folds it is scored on (non-nested): optimistic"
UNKNOWN_PRETRAINING = ("encoder pretrained on unknown data (no pretraining record tied to its weights): it may have "
                       "seen its validation cases")


def pretraining_flag(pretraining: dict | None) -> str | None:
    """The flag of a config.json's `pretraining` block: validation cases seen, or unknown; None when clean."""
    folds = list(((pretraining or {}).get("folds") or {}).values())
    seen = sum(int(e.get("saw_validation_cases") or 0) for e in folds)
    if seen:
        return f"encoder pretrained on {seen} of its validation cases (images only): optimistic"
    # entries written before `leak` existed said "none (not written by islesbench pretrain)" in `record`
    if any(e.get("leak") == LEAK_UNKNOWN or (e.get("leak") is None and "record" in e) for e in folds):
        return UNKNOWN_PRETRAINING
    return None


def own_flags(config: dict) -> list:
    """The flags of one run's own choices and data (not its members')."""
    flags = []
    pretraining = pretraining_flag(config.get("pretraining"))
    if pretraining:
        flags.append(pretraining)
    tuning = config.get("tuning") or None
    if tuning and not tuning.get("nested"):
        flags.append(NON_NESTED)
    return flags


def member_flags(member_configs: dict) -> dict:
    """{member name: its flags} of the members that have any (what an ensemble's config.json records)."""
    return {name: flags for name, config in member_configs.items() if (flags := selection_flags(config))}


def selection_flags(config: dict) -> list:
    """Every flag of a run: its own, then each flagged member's ("member NAME: flag")."""
    flags = own_flags(config)
    for name, found in sorted((config.get("member_flags") or {}).items()):
        flags += [f"member {name}: {flag}" for flag in found]
    return flags
