"""What produced a result (islesbench/storage/provenance.py): the diff hash of uncommitted code, the CPU
description, and the records a resumed fold keeps."""

from __future__ import annotations

import subprocess

import pytest

from islesbench.storage import provenance

CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 amx_tile amx_bf16 ht
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 amx_tile amx_bf16 ht
"""


def _git(repo, *argv):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *argv], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A git work tree with one committed module under islesbench/ and an ignored folder."""
    root = tmp_path / "repo"
    (root / "islesbench").mkdir(parents=True)
    (root / "islesbench" / "model.py").write_text("WIDTH = 16\n")
    (root / ".gitignore").write_text("/ignored/\n")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    return root


def test_a_clean_tree_has_no_diff_hash(repo):
    assert provenance.tree_changes(repo) == {"tree_modified": False, "diff_sha256": None, "modified_files": []}


def test_the_diff_hash_names_the_uncommitted_code_not_just_that_there_is_some(repo):
    module = repo / "islesbench" / "model.py"
    module.write_text("WIDTH = 8\n")
    first = provenance.tree_changes(repo)
    assert first["tree_modified"] and first["modified_files"] == ["islesbench/model.py"]
    module.write_text("WIDTH = 4\n")
    second = provenance.tree_changes(repo)
    assert second["tree_modified"] and second["diff_sha256"] != first["diff_sha256"]
    module.write_text("WIDTH = 8\n")
    assert provenance.tree_changes(repo)["diff_sha256"] == first["diff_sha256"]  # the same change, the same hash
    _git(repo, "add", "-A")  # staged or not, the same code
    assert provenance.tree_changes(repo)["diff_sha256"] == first["diff_sha256"]


def test_a_new_untracked_module_changes_the_hash_but_outputs_and_ignored_files_do_not(repo):
    (repo / "runs").mkdir()
    (repo / "runs" / "config.json").write_text("{}")  # a run's own output in the tree: not code
    (repo / "README.md").write_text("notes")
    (repo / "ignored").mkdir()
    (repo / "ignored" / "x.py").write_text("A = 1\n")
    assert provenance.tree_changes(repo)["tree_modified"] is False
    new = repo / "islesbench" / "extra.py"
    new.write_text("A = 1\n")
    first = provenance.tree_changes(repo)
    assert first["tree_modified"] and first["modified_files"] == ["islesbench/extra.py (untracked)"]
    new.write_text("A = 2\n")
    assert provenance.tree_changes(repo)["diff_sha256"] != first["diff_sha256"]


def test_cpu_model_and_the_flags_that_change_the_numbers():
    provenance.cpu_description.cache_clear()
    model, flags = provenance.cpu_description(CPUINFO)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert flags == ["avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]  # fpu, sse2, ht left out
    provenance.cpu_description.cache_clear()


def test_this_process_records_commit_diff_hash_versions_and_cpu():
    record = provenance.provenance()
    assert record["commit"] is None or len(record["commit"]) == 40
    assert record["tree_modified"] is not None and (record["diff_sha256"] is not None) == record["tree_modified"]
    assert record["versions"]["numpy"] and "tensorflow" in record["versions"]
    assert "cpu_model" in record["machine"] and isinstance(record["machine"]["cpu_flags"], list)
    fold = provenance.fold_provenance(["CPU"], 1)
    assert fold["machine"]["devices"] == ["CPU"] and fold["machine"]["replicas"] == 1
    assert fold["machine"]["threads"]["intra_op"] >= 1


def test_a_resumed_fold_keeps_the_provenance_of_whoever_trained_it_before():
    current = {"commit": "b" * 40, "tree_modified": False, "versions": {"tensorflow": "2.21.0"}, "machine": {}}
    before = dict(current, commit="a" * 40)
    older = dict(current, versions={"tensorflow": "2.20.0"})
    earlier = provenance.earlier_records({"provenance": before, "provenance_earlier": [older, before]}, current)
    assert earlier == [before, older]
    assert provenance.earlier_records({"provenance": dict(current, command="other")}, current) == []


def test_uncommitted_changes_recorded_without_a_hash_equal_nothing():
    old = {"commit": "a" * 40, "tree_modified": True}
    assert provenance.compared_values(old)["diff_sha256"] != provenance.compared_values(
        {"commit": "a" * 40, "tree_modified": False})["diff_sha256"]
    assert provenance.compared_values(None)["commit"] == "not recorded"
