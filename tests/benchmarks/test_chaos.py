"""SIGKILL at seeded random moments, re-run to the end, compare with an uninterrupted run (benchmarks/chaos.py)."""

import pytest
from benchmark_scripts import load

chaos = load("chaos")


def test_compare_finds_a_lost_history_row_and_a_leftover_temporary(tmp_path):
    ref, got = tmp_path / "ref" / "fold_0", tmp_path / "got" / "fold_0"
    for d in (ref, got):
        d.mkdir(parents=True)
        (d / "DONE").write_text("x")
        (d / "metrics.csv").write_text("case,dice\ncase_1,0.5\n")
    (ref / "history.csv").write_text("epoch,loss,time\n0,1.0,5\n1,0.5,6\n2,0.4,7\n")
    (got / "history.csv").write_text("epoch,loss,time\n0,1.0,9\n1,0.5,9\n3,0.4,9\n")
    (got / ".metrics.tmp-123.csv").write_text("")
    problems = chaos.compare(tmp_path / "ref", tmp_path / "got")
    assert any("epochs [0, 1, 3]" in p for p in problems) and any("temporary file" in p for p in problems)
    (got / "history.csv").write_text("epoch,loss,time\n0,1.0,9\n1,0.5,9\n2,0.4,9\n")
    (got / ".metrics.tmp-123.csv").unlink()
    assert chaos.compare(tmp_path / "ref", tmp_path / "got") == []


@pytest.mark.slow
@pytest.mark.parametrize("command", ["prepare", "run"])
def test_killed_and_resumed_equals_uninterrupted(tmp_path, command):
    import random

    shared = chaos.setup(tmp_path, seed=0)
    summary = chaos.chaos_command(command, tmp_path, shared, random.Random(0), kills=3, log=None)
    assert "error" not in summary and summary["kills"] >= 1
    assert summary["mismatches"] == []
