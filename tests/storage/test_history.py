"""islesbench.storage.history: the one reader and writer of the per-epoch history CSV, and its Dice columns."""

import math

import pytest

from islesbench.errors import IslesbenchError
from islesbench.storage import history


def test_rows_round_trip_in_first_seen_column_order(tmp_path):
    path = tmp_path / "history.csv"
    rows = [{"epoch": 0, "loss": 0.5, "time": 1.0}, {"epoch": 1, "loss": 0.25, "val_loss": 0.3, "time": 2.0}]
    history.write_rows(path, rows)
    assert path.read_text() == "epoch,loss,time,val_loss\n0,0.5,1.0,\n1,0.25,2.0,0.3\n"
    assert history.read_rows(path) == rows  # the empty cell is left out, epoch stays an int
    assert history.read_rows(path, before_epoch=1) == rows[:1]
    assert history.read_rows(tmp_path / "missing.csv") == []


@pytest.mark.parametrize("train, val", [("dice", "val_dice"), ("mask_dice", "val_mask_dice")])
def test_the_dice_column_of_single_and_named_output_models(tmp_path, train, val):
    path = tmp_path / "history.csv"
    path.write_text(f"epoch,loss,{train},val_loss,{val},time\n0,1.0,0.1,1.2,0.05,7\n1,0.7,0.3,0.9,0.2,8\n")
    rows = history.read_rows(path)
    assert [history.dice_value(r, validation=True) for r in rows] == [0.05, 0.2]
    assert history.dice_value(rows[0]) == 0.1
    columns = history.read_columns(path)
    assert history.dice_column(columns) == train and history.dice_column(columns, validation=True) == val
    assert columns[val] == [0.05, 0.2]
    assert history.dice_value({"epoch": 0, "loss": 1.0}, validation=True) is None  # a pretraining's rows


def test_malformed_histories(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,oops\n")
    with pytest.raises(IslesbenchError, match="unreadable training history .*delete the fold folder"):
        history.read_rows(path)
    columns = history.read_columns(path)  # for plotting: what is not a number is NaN
    assert columns["epoch"] == [0.0] and math.isnan(columns["loss"][0])
    with pytest.raises(history.UnreadableHistory) as info:
        history.read_columns(tmp_path / "missing.csv")
    assert info.value.cause.startswith("FileNotFoundError")
    path.write_text("")
    assert history.read_columns(path) == {}
