"""Images as arrays: NIfTI reading and writing with header checks and the one affine check with its
tolerances (islesbench.imaging.nifti_io), and preprocessing: per-channel normalisation, the model grid,
orientation and resampling (preprocessing).

May import: the core.
"""
