"""Grouping a runs folder's runs into configurations: seeds together only when nothing else differs."""

from fake_runs import DICE, write_fake_run

from islesbench.config import apply_overrides, profile_config
from islesbench.reports.report import build_report
from islesbench.reports.results_reader import collect_runs, group_runs


def _write_seed_runs(runs, loss: str, precision_of_seed1: str) -> None:
    """Seeds 0 and 1 of a U-Net; seed 1 as a second `benchmark --seeds 2 --precision ...` into the same folder."""
    for seed in (0, 1):
        train = {"seed": seed, **({"precision": precision_of_seed1} if seed else {})}
        cfg = apply_overrides(profile_config("quick"), {"model": {"arch": "unet"}, "loss": {"name": loss},
                                                        "train": train})
        write_fake_run(runs, cfg.name, [d - 0.05 * seed - (0.1 if loss == "ce" else 0) for d in DICE["unet-focal"]],
                       config=cfg)


def test_seed_runs_of_one_configuration_form_one_group(tmp_path):
    _write_seed_runs(tmp_path, "focal", "auto")
    groups = group_runs(collect_runs(tmp_path)[0])
    assert [(g.name, g.seeds, g.mixed) for g in groups] == [("unet-focal", [0, 1], "")]


def test_a_seed_run_of_another_configuration_is_split_off_and_flagged(tmp_path):
    _write_seed_runs(tmp_path, "focal", "float32")
    groups = group_runs(collect_runs(tmp_path)[0])
    assert [(g.name, g.seeds) for g in groups] == [("unet-focal", [0]), ("unet-focal [seeds 1]", [1])]
    for g in groups:
        assert "train.precision auto → float32" in g.mixed and "split into separate rows" in g.mixed


def test_a_mixed_seed_group_is_never_merged_nor_a_controlled_claim(tmp_path, capsys):
    runs = tmp_path / "runs"
    for loss in ("focal", "ce"):
        _write_seed_runs(runs, loss, "float32")
    build_report(runs, tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| [unet-focal")]
    assert len(rows) == 2 and all("MIXED SEEDS" in r for r in rows)
    claim = next(line for line in md.splitlines() if line.startswith("| focal > CE (unet) |"))
    assert "controlled" not in claim.replace("NOT a test", "")
    assert "seed runs of other configurations" in claim
    assert "warning: the runs named unet-focal" in capsys.readouterr().err
