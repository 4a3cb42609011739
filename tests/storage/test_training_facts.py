"""A fold's training.json: written atomically, read back, absent for folds trained before it existed."""

import pytest

from islesbench.errors import IslesbenchError
from islesbench.storage import run_layout, training_facts


def test_facts_round_trip_and_an_older_fold_has_none(tmp_path):
    paths = run_layout.fold_paths(tmp_path, "unet-focal", 0)
    paths.root.mkdir(parents=True)
    assert training_facts.read_training_facts(paths.training_facts) is None
    facts = {"optimizer_steps": 150, "replicas": 1, "drawn": {"lesion_slice_share": 0.5}}
    training_facts.write_training_facts(paths.training_facts, facts)
    assert paths.training_facts.name == "training.json"
    assert training_facts.read_training_facts(paths.training_facts) == facts
    assert not list(paths.root.glob(".*tmp*"))


def test_a_damaged_facts_file_is_named(tmp_path):
    path = tmp_path / "training.json"
    path.write_text("{not json")
    with pytest.raises(IslesbenchError, match="training facts .*training.json is not valid JSON"):
        training_facts.read_training_facts(path)
