"""The one NIfTI writer: `save_nifti` writes an array deterministically and atomically (equal inputs give
byte-identical files), read back by islesbench.imaging.nifti_io.

nibabel is imported inside the function, so that `islesbench --help` and start-up stay fast.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from islesbench.atomic import atomic_path
from islesbench.errors import IslesbenchError
from islesbench.imaging.nifti_io import NIFTI_SUFFIXES


def save_nifti(path, array, affine, spacing=None, dtype=np.float32, scaling: tuple | None = None) -> None:
    """Write an array as NIfTI-1 (.nii or .nii.gz by suffix) atomically, `affine` as sform and qform.

    Deterministic header, .nii.gz gzipped without a timestamp: equal inputs give byte-identical files. The
    affine is kept exactly when it is float32-representable (NIfTI stores float32).

    Args:
        path: the file to write; its name must end in .nii or .nii.gz.
        array: (X, Y, Z) or (X, Y, Z, T) values.
        affine: (4, 4) voxel-to-world affine in mm.
        spacing: the header zooms, (3,) mm (4-D: append the frame interval in s); None: from the affine.
        dtype: the on-disk type.
        scaling: (slope, inter) stores (array - inter) / slope, rounded for integer types; None stores
            the values unscaled (an integer dtype: rounded, after a range check).
    """
    import nibabel as nib

    path = Path(path)
    if not path.name.endswith(NIFTI_SUFFIXES):
        raise IslesbenchError(f"{path}: a NIfTI file name must end in .nii or .nii.gz")
    array = np.asarray(array)
    dtype = np.dtype(dtype)
    affine = np.asarray(affine, dtype=np.float64)
    if scaling is not None:
        slope, inter = float(scaling[0]), float(scaling[1])
        stored = (array.astype(np.float64) - inter) / slope
    else:
        slope, inter = float("nan"), float("nan")  # NIfTI: no scaling
        stored = array
    if dtype.kind in "iu":
        values = stored if stored.dtype.kind in "biu" else np.rint(stored)
        info = np.iinfo(dtype)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise IslesbenchError(f"{path}: values {values.min():g}..{values.max():g} do not fit {dtype}")
        stored = values.astype(dtype)
    else:
        stored = stored.astype(dtype)
    # The header and data are serialised by hand: nibabel recomputes scl_slope/scl_inter from an
    # in-memory array on save, which would drop an explicit `scaling`.
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(stored.shape)
    header.set_sform(affine, code=1)
    header.set_qform(affine, code=1)
    if spacing is not None:
        zooms = tuple(float(s) for s in spacing)
    else:
        zooms = tuple(float(z) for z in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    header.set_zooms((zooms + (1.0,) * stored.ndim)[: stored.ndim])
    header.set_xyzt_units("mm", "sec")
    header["scl_slope"] = slope
    header["scl_inter"] = inter
    header["descrip"] = b"islesbench"
    header["vox_offset"] = 352
    # Fortran (NIfTI) voxel order, native byte order as the header says.
    body = np.ascontiguousarray(stored.T)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as raw:
            if path.name.endswith(".gz"):
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as out:
                    write_nifti_body(out, header, body)
            else:
                write_nifti_body(raw, header, body)


def write_nifti_body(stream, header, body: np.ndarray) -> None:
    """The header block, an empty extension flag and the voxels, in that order (NIfTI-1 single file)."""
    stream.write(header.binaryblock)
    stream.write(b"\x00" * 4)  # no header extensions
    stream.write(memoryview(body).cast("B"))
