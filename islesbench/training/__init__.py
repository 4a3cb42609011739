"""Training and validating a configuration: the cross-validation loop over folds
(islesbench.training.cross_validation), one fold's fit (fold), checkpoints and resume (checkpoints),
compile, callbacks, the whole-volume validation (validation), Keras metrics, keeping a model between
folds (model_reuse) and tuned hyperparameters (hparams).

May import: every package above it in README.md's layer table (core, runtime, imaging, storage,
layouts, evaluation, data, models, inference).
"""
