"""A child's environment (islesbench/runtime/child_env.py): the thread counts a process records with each fold."""

from __future__ import annotations

from islesbench.runtime import child_env


def test_effective_threads_follow_the_variables_a_cell_is_given():
    share = child_env.thread_share(jobs=2, cores=4)
    assert child_env.effective_threads(share) == {"intra_op": 2, "inter_op": 2, "omp": 2}


def test_effective_threads_without_variables_are_tensorflows_default_the_usable_cores():
    cores = child_env.usable_cores()
    assert child_env.effective_threads({}) == {"intra_op": cores, "inter_op": cores, "omp": cores}
    # so a plain `islesbench run` and a `benchmark --jobs 1` cell (variables = all cores) record the same threads
    assert child_env.effective_threads(child_env.thread_share(jobs=1)) == {"intra_op": cores, "inter_op": cores,
                                                                         "omp": cores}
