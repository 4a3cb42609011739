"""Published anchors: the right numbers, each labelled by data and split, none posing as another."""

import pytest

from islesbench.evaluation.names import METRIC_NAMES
from islesbench.reports import anchors


def test_every_anchor_names_its_data_split_and_source():
    keys = [a.key for a in anchors.ANCHORS]
    assert len(keys) == len(set(keys))
    for a in anchors.ANCHORS:
        assert a.metric in METRIC_NAMES
        assert a.what and a.source and a.data
        assert ("cross-validation" in a.data) != ("leaderboard" in a.data)  # exactly one kind of split
        assert "synthetic" not in a.data.lower()
        assert a.data in a.label() and a.source in a.label() and a.text in a.label()
        if a.value is not None:
            assert float(a.text.split()[0]) == a.value  # the number matches its published text


def test_paper_cross_validation_numbers():
    a = anchors.paper_cv_anchor("pspnet-imagenet-focal")
    assert (a.value, a.text, a.metric) == (0.54, "0.54 ± 0.09", "dice")
    assert "94 cases" in a.data and "5-fold cross-validation" in a.data
    assert anchors.paper_cv_anchor("pspnet-imagenet-ce").value == 0.49
    assert anchors.paper_cv_anchor("pspnet-scratch-focal").value is None  # published only relative
    assert anchors.paper_cv_anchor("threshold") is None
    ensemble = anchors.paper_cv_anchor("anything", is_ensemble=True)
    assert ensemble.value == 0.57 and "training leaderboard" in ensemble.data


def test_isles2018_test_leaderboard_of_hakim_2021():
    board = {a.key: a for a in anchors.challenge_anchors("isles2018")}
    assert board["isles2018-test-best-dice"].value == 0.51
    assert board["isles2018-test-best-avd"].value == 10.1 and board["isles2018-test-best-avd"].metric == "avd_ml"
    assert board["isles2018-test-threshold-dice"].value == 0.30
    assert board["isles2018-test-threshold-avd"].value == 15.3
    assert board["paper-ensemble-test"].value == 0.44
    assert all("Hakim" in a.source for k, a in board.items() if k.startswith("isles2018"))
    assert all("test set" in a.data for a in board.values())


def test_isles24_is_its_own_task():
    (winner,) = anchors.challenge_anchors("isles24")
    assert winner.value == 0.285 and "ISLES'24" in winner.data and "acute CT" in winner.data


def test_unknown_key_names_the_known_ones():
    with pytest.raises(KeyError, match="paper-cv-pspnet-imagenet-focal"):
        anchors.anchor("nope")


def test_the_papers_effects_agree_with_its_numbers():
    focal_vs_ce = anchors.paper_effect("pspnet-imagenet-focal", "pspnet-imagenet-ce")
    assert focal_vs_ce.value == pytest.approx(anchors.anchor("paper-cv-pspnet-imagenet-focal").value
                                              - anchors.anchor("paper-cv-pspnet-imagenet-ce").value)
    assert anchors.paper_effect("pspnet-imagenet-focal", "pspnet-scratch-focal").value == 0.07  # "about 7 points"
    assert anchors.paper_effect("unet-focal", "vnet-focal") is None  # "below PSPNet": no number
