"""The no-learning clinical baseline: ischemic core = relative CBF < 30 % of the normal hemisphere.

As RAPID applies it, on the CBF map alone:

* tissue: brain parenchyma (positive CBF, the maps' brain support, and CT 15–60 HU, which leaves out CSF
  and bone; see islesbench.imaging.preprocessing.brain_mask);
* midline: the tissue's centre of mass along anatomical left–right, taken per axial slice so a tilted
  head is followed. Left–right and the axial slices come from the case's affine: the volumes are
  reoriented to the canonical orientation (islesbench.imaging.preprocessing, axis 0 = left–right, axis 2 =
  slices) and the core is mapped back to the stored voxel order. Without an affine the stored order is
  taken as canonical;
* normal reference: the mean CBF of the tissue in the hemisphere whose mean CBF is higher (the lesion
  lowers the mean of its own side);
* core: tissue with CBF < 0.3 × reference.
"""

from __future__ import annotations

import numpy as np

from islesbench.imaging import preprocessing

RCBF_THRESHOLD = 0.30


def hemisphere_masks(tissue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) tissue masks split at each slice's left–right centre of mass."""
    x = np.arange(tissue.shape[0])[:, None]
    left = np.zeros_like(tissue)
    for z in range(tissue.shape[2]):
        t = tissue[:, :, z]
        counts = t.sum(axis=1)
        mid = (counts * np.arange(t.shape[0])).sum() / counts.sum() if counts.sum() else t.shape[0] / 2
        left[:, :, z] = t & (x < mid)
    return left, tissue & ~left


def core_mask(volumes: dict, rcbf_threshold: float = RCBF_THRESHOLD, affine=None) -> np.ndarray:
    """The rCBF rule's core mask (X, Y, Z) bool for one case's raw volumes (needs CT_CBF), in stored order.

    `affine` (the case's) says which voxel axis is anatomical left–right and which the slice axis.
    """
    if affine is not None:
        ornt = preprocessing.canonical_ornt(affine)
        canonical = {m: preprocessing.reorient(v, ornt) for m, v in volumes.items()}
        core = core_mask(canonical, rcbf_threshold)
        return np.ascontiguousarray(preprocessing.reorient(core, preprocessing.inverse_ornt(ornt)))
    cbf = volumes["CT_CBF"].astype(np.float32)
    tissue = preprocessing.brain_mask(volumes)
    left, right = hemisphere_masks(tissue)
    means = [float(np.mean(cbf[h])) for h in (left, right) if h.any()]
    if not means:
        return np.zeros(cbf.shape, bool)
    reference = max(means)
    return tissue & (cbf < rcbf_threshold * reference)
