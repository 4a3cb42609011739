"""The per-epoch history CSV (a fold's or a pretraining's history.csv): its one reader, writer and columns.

One row per completed epoch: `epoch` (counted from 0), then what Keras logged for the epoch (`loss`,
`val_loss`, per-output losses, the Dice metric), `time` (Unix time at the epoch's end) and, for a
pretraining, `seconds` (training time over all resumes). The Dice metric's column is named by Keras after
the model's outputs: `dice` / `val_dice` for a single-output model, `mask_dice` / `val_mask_dice` when the
model has named outputs (PSPNet's auxiliary head); `dice_column` and `dice_value` find it under either.
Files are written as they are, with the columns in the order they first appear in the rows.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from islesbench.atomic import write_text_atomic
from islesbench.errors import IslesbenchError

EPOCH = "epoch"
LOSS = "loss"
VAL_LOSS = "val_loss"
TIME = "time"
SECONDS = "seconds"
# The Dice metric's column, by preference: a single-output model's name, then the named-output model's.
DICE_COLUMNS = ("dice", "mask_dice")
VAL_DICE_COLUMNS = ("val_dice", "val_mask_dice")


class UnreadableHistory(IslesbenchError):
    """A history file that cannot be read; `cause` is the underlying error as `Type: message`."""

    def __init__(self, path, cause: str):
        super().__init__(f"{path}: unreadable training history ({cause}); delete the fold folder to retrain it")
        self.path, self.cause = Path(path), cause


def _raw_rows(path: Path) -> list:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def read_rows(path, before_epoch: int | None = None) -> list:
    """The rows as dicts (epoch int, the rest float; empty cells left out), those of epochs before
    `before_epoch` only when given; [] when the file does not exist. A malformed file: UnreadableHistory."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        rows = [{k: float(v) if k != EPOCH else int(float(v)) for k, v in r.items() if v not in ("", None)}
                for r in _raw_rows(path)]
        if before_epoch is not None:
            rows = [r for r in rows if r[EPOCH] < before_epoch]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, csv.Error) as exc:
        raise UnreadableHistory(path, f"{type(exc).__name__}: {exc}") from None
    return rows


def read_columns(path) -> dict:
    """The file as {column: list of floats}, one entry per row (a missing or non-numeric cell is NaN), for
    plotting; {} for a file without rows. An unreadable file: UnreadableHistory."""
    path = Path(path)
    try:
        rows = _raw_rows(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UnreadableHistory(path, f"{type(exc).__name__}: {exc}") from None
    if not rows:
        return {}
    return {key: [_to_float(r.get(key)) for r in rows] for key in rows[0]}


def _to_float(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def write_rows(path, rows: list) -> None:
    """Replace `path` (atomically) with these rows; columns in the order they first appear."""
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    lines = [",".join(keys)] + [",".join("" if r.get(k) is None else str(r.get(k)) for k in keys) for r in rows]
    write_text_atomic(Path(path), "\n".join(lines) + "\n")


def dice_column(columns, validation: bool = False) -> str | None:
    """The Dice metric's column among `columns` (training batches, or validation), or None."""
    return next((c for c in (VAL_DICE_COLUMNS if validation else DICE_COLUMNS) if c in columns), None)


def dice_value(row: dict, validation: bool = False):
    """A row's Dice (training batches, or validation), or None when the row has none."""
    column = dice_column(row, validation)
    return row[column] if column is not None else None
