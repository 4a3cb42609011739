"""From a trained model (or a rule) to masks: predicting a volume on the model grid and back
(islesbench.inference.volume), choosing the threshold on training cases, the rCBF < 30 % rule
(threshold_rule), segmenting ISLES cases (predictor) and averaging runs (ensemble).

May import: the core, islesbench.runtime, islesbench.imaging, islesbench.storage, islesbench.layouts,
islesbench.evaluation, islesbench.models.
"""
