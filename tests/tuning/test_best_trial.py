"""The best trial does not depend on the order a resumed oracle lists its trials in."""

from types import SimpleNamespace

from islesbench.tuning.cv_tuner import OBJECTIVE
from islesbench.tuning.outputs import best_record


def _trial(trial_id, score, lr):
    metrics = SimpleNamespace(exists=lambda name: name == OBJECTIVE, get_last_value=lambda name: score)
    return SimpleNamespace(trial_id=trial_id, status="COMPLETED", metrics=metrics,
                           hyperparameters=SimpleNamespace(values={"learning_rate": lr}))


def test_a_tie_goes_to_the_earliest_trial_whatever_the_order():
    trials = [_trial("0", 0.5, 1e-3), _trial("1", 0.5, 2e-3), _trial("10", 0.4, 3e-3)]
    for order in (trials, trials[::-1]):
        oracle = SimpleNamespace(trials={t.trial_id: t for t in order})
        assert best_record(oracle, [], {})["trial_id"] == "0"
