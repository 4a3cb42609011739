"""Corrupted inputs through the CLI (benchmarks/fuzz.py): no traceback, no hang, each fault named.

The default run takes one input of each kind (command × file format) plus the truncated .nii.gz that
once ended `evaluate` in an EOFError traceback; the whole seeded corpus (>= 200 inputs) is the slow test.
"""

import pytest
from benchmark_scripts import load

fuzz = load("fuzz")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return fuzz.build_base(tmp_path_factory.mktemp("fuzz"))


def _failures(results):
    return [f"{r['command']} {r['family']} {r['mutation']} {r['target']}: {r['verdict']}: {r['reason']}"
            for r in results if r["verdict"] not in fuzz.GOOD]


def test_corpus_is_seeded_and_covers_every_damage(base):
    corpus = fuzz.make_corpus(base, seed=0, size=216)
    assert corpus == fuzz.make_corpus(base, seed=0, size=216) != fuzz.make_corpus(base, seed=1, size=216)
    assert len(corpus) >= 200
    kinds = {(i.family, i.mutation) for i in corpus}
    assert {("nifti", m) for m in fuzz.NIFTI_MUTATIONS} <= kinds
    assert {"keras", "json", "csv", "tfrecord"} <= {f for f, _ in kinds}
    assert {i.command for i in corpus} == {"prepare", "evaluate", "predict", "report", "run"}
    assert any(i.target.endswith(".nii") and i.mutation == "truncate" for i in corpus)
    assert any(i.target.endswith(".nii.gz") and i.mutation == "truncate" for i in corpus)


def test_one_input_of_each_kind_is_named(base, tmp_path):
    corpus = fuzz.make_corpus(base, seed=0, size=216)
    sample = [i for i in corpus[:10] if i.command != "run"]  # the first of every (command, format) pool
    sample.append(fuzz.FuzzInput(999, "evaluate", "ref/case_1.nii.gz", "nifti", "truncate", 7))
    results = fuzz.run_corpus(base, sample, tmp_path, jobs=1, log=None)
    assert not _failures(results)
    assert [r["verdict"] for r in results][-1] == "named"


@pytest.mark.slow
def test_whole_corpus(base, tmp_path):
    results = fuzz.run_corpus(base, fuzz.make_corpus(base, seed=0, size=216), tmp_path, jobs=2, log=None)
    assert not _failures(results)
