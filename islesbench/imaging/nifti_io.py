"""The one safe NIfTI reader: every command reads .nii / .nii.gz files here (and writes them with
islesbench.imaging.nifti_write).

A file is judged on its header before a single voxel is allocated: the header bytes are parsed here
(NIfTI-1 and NIfTI-2, either byte order) and checked, then nibabel's header class turns the checked
fields into an affine and zooms. Refused, with one line naming the file and the fault
(`NiftiFileError`, an IslesbenchError, so the CLI prints it and exits with status 2):

- not a NIfTI file (size of header, magic), a header pointing to a separate .img file, a gzip stream
  that is damaged or ends early, a .nii shorter than its header promises;
- dim[0] outside 1..7, a zero or negative dimension, a header announcing more data than
  `MAX_BYTES` (a corrupt header claiming 10^12 voxels is refused before any allocation);
- a datatype code that is not a real-valued number type (complex, RGB, bit, unknown);
- vox_offset inside the header, not finite, or past the end of the file;
- a non-finite or non-positive voxel spacing, a non-finite affine, an invalid qform quaternion, a qform
  and an sform that are both set and disagree (beyond AFFINE_ATOL / ORIGIN_ATOL);
- scl_slope infinite, or a valid scl_slope with a non-finite scl_inter;
- more dimensions than the caller expects (`ndim`), after dropping trailing singleton axes.

`read_nifti` reads a whole 3-D/4-D file (faults as CaseErrors);
`affines_agree` is the one affine check of every module that compares two images' geometry;
`mask_fault` is the one rule for a lesion mask's values, wherever a reference mask is read (`prepare`,
`run`'s validation, `evaluate`): after scaling, zero and at most one positive value, a whole number up to
scaling round-off ({0, 1}, {0, 255}, {0, k}, float 0./1.: lesion = nonzero). Refused, naming the file: negative values,
several positive values (labels, interpolation) and a fractional one ({0, 0.5}: a probability or
resampled map, where "nonzero" and "≥ 0.5" or an integer cast disagree on what is lesion).

Kept, as the NIfTI-1 standard says: scl_slope 0 or NaN means the values are stored unscaled (nibabel
writes NaN by default). Trailing singleton dimensions beyond the expected number (default 3) are
dropped: (X, Y, Z, 1) reads as (X, Y, Z), and a one-slice (X, Y, 1) stays 3-D.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from islesbench.errors import CaseError, IslesbenchError

# nibabel is imported inside the functions that use it, to keep `islesbench --help` fast.

# Largest image (bytes of stored data) read; far above an ISLES 4-D PWI series (~150 MB) and far
# below what a corrupt header can claim.
MAX_BYTES = 4 * 1024**3
AFFINE_ATOL = 1e-3  # direction/zoom part of an affine, mm per voxel (`affines_agree`)
ORIGIN_ATOL = 1e-2  # translation, mm
NIFTI_SUFFIXES = (".nii", ".nii.gz")
_CASE_FOLDER = re.compile(r"^(case_\d+|sub-[A-Za-z0-9]+)$")  # an ISLES 2018 case or a BIDS subject

# Real-valued datatype codes (NIfTI-1 nifti1.h) -> numpy type; complex, RGB and bit types are refused.
DATATYPES = {
    2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64,
    256: np.int8, 512: np.uint16, 768: np.uint32, 1024: np.int64, 1280: np.uint64,
}
_NAMED_UNSUPPORTED = {0: "unknown", 1: "binary", 32: "complex64", 128: "RGB", 1536: "float128",
                      1792: "complex128", 2048: "complex256", 2304: "RGBA"}
_READ_CHUNK = 1 << 22
# How far from a whole number a mask's one positive value may lie (relative): float32 scaling round-off.
WHOLE_RTOL = 1e-5


class NiftiFileError(IslesbenchError):
    """A NIfTI file that cannot be read: names the file and the fault on one line."""

    def __init__(self, path, fault: str):
        self.path, self.fault = Path(path), fault
        super().__init__(f"{path}: {fault}")


@dataclass(frozen=True)
class NiftiInfo:
    """A checked header: what the file holds, where, and its geometry. Nothing of the data is read."""

    path: Path
    shape: tuple  # after dropping trailing singleton dimensions beyond the expected (or third) one
    stored_shape: tuple  # dim[1..dim[0]] as written
    dtype: np.dtype  # on-disk type with the header's byte order
    offset: int  # vox_offset in the (uncompressed) stream
    compressed: bool
    affine: np.ndarray  # 4x4 float64 (sform if set, else qform, else from pixdim)
    zooms: tuple  # pixdim of each stored dimension
    slope: float | None  # None: unscaled
    inter: float | None
    time_unit: str  # xyzt_units time part as nibabel names it ("sec", "msec", "usec", "unknown", ...)

    @property
    def spacing(self) -> tuple:
        """Voxel size (mm) of the three spatial axes."""
        return tuple(self.zooms[:3])

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.stored_shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def frame_interval(self) -> float:
        """Seconds between frames of a 4-D series (pixdim[4] and xyzt_units); 1.0 when not recorded."""
        if len(self.zooms) < 4 or not np.isfinite(self.zooms[3]) or self.zooms[3] <= 0:
            return 1.0
        return float(self.zooms[3]) * {"msec": 1e-3, "usec": 1e-6}.get(self.time_unit, 1.0)


def is_nifti_name(path) -> bool:
    """True for a file name ending in .nii or .nii.gz."""
    return str(path).endswith(NIFTI_SUFFIXES)


def read_info(path, ndim: int | None = None, max_bytes: int = MAX_BYTES) -> NiftiInfo:
    """The checked header of `path`; NiftiFileError on any fault. `ndim` (3 or 4) is the expected
    number of dimensions after dropping trailing singletons; None accepts 1-D to 7-D."""
    path = Path(path)
    if not path.is_file():
        raise NiftiFileError(path, "file does not exist" if not path.exists() else "not a file")
    try:
        with path.open("rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"  # by content: a .nii that is gzipped still reads
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
            block = stream.read(540)
    except (OSError, EOFError, zlib.error) as exc:
        raise NiftiFileError(path, f"unreadable NIfTI file ({_describe(exc)})") from None
    info = _parse_header(path, block, compressed, max_bytes, keep_dims=ndim or 3)
    if ndim is not None and len(info.shape) != ndim:
        raise NiftiFileError(path, f"wrong number of dimensions: shape {info.shape}, expected {ndim}-D")
    if not compressed:
        size = path.stat().st_size
        if info.offset > size:
            raise NiftiFileError(path, f"vox_offset {info.offset} is past the end of the file ({size} bytes)")
        if size < info.offset + info.nbytes:
            raise NiftiFileError(path, f"truncated file: {size} bytes, the header needs {info.offset + info.nbytes}")
    return info


def read_raw(info: NiftiInfo) -> np.ndarray:
    """The stored values (unscaled, on-disk dtype in native byte order), shaped `info.shape`."""
    path = info.path
    try:
        with path.open("rb") as raw:
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if info.compressed else raw
            body = _read_exactly(stream, info.offset, info.nbytes, path)
            if info.compressed:
                while stream.read(_READ_CHUNK):  # to the end: gzip checks its CRC and length there
                    pass
    except NiftiFileError:
        raise
    except (OSError, EOFError, zlib.error) as exc:
        raise NiftiFileError(path, f"truncated or corrupt image data ({_describe(exc)})") from None
    data = np.frombuffer(body, dtype=info.dtype).reshape(info.stored_shape, order="F")
    return data.astype(info.dtype.newbyteorder("="), copy=False).reshape(info.shape, order="F")


def scaled(info: NiftiInfo, raw: np.ndarray) -> np.ndarray:
    """float32 values with the header's scaling applied."""
    data = raw.astype(np.float32)
    if info.slope is not None and (info.slope, info.inter) != (1.0, 0.0):
        data = (data * np.float32(info.slope) + np.float32(info.inter or 0.0)).astype(np.float32, copy=False)
    return data


def read_image(path, ndim: int | None = None, max_bytes: int = MAX_BYTES) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(float32 data with scaling applied, 4x4 affine, spacing) of a NIfTI file; NiftiFileError on any fault."""
    info = read_info(path, ndim=ndim, max_bytes=max_bytes)
    return scaled(info, read_raw(info)), info.affine.copy(), info.spacing


def affines_agree(a, b) -> bool:
    """True when two voxel-to-world affines are the same up to float32 header round-off."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(np.allclose(a[:3, :3], b[:3, :3], rtol=0, atol=AFFINE_ATOL)
                and np.allclose(a[:3, 3], b[:3, 3], rtol=0, atol=ORIGIN_ATOL))


def mask_fault(values: np.ndarray) -> str | None:
    """Why a lesion mask's values are not (repairably) binary, or None when they are.

    A mask is zero and at most one positive value that is a whole number: {0, 1}, {0, 255}, {0, k}, float
    0./1.; that value is lesion. A fractional value is refused, not read as lesion: {0, 0.5} is what a
    probability map or an interpolated mask looks like, and the organisers' ISLES'24 code itself disagrees
    on it (`astype(bool)` for the volume difference counts it as lesion, `astype(int)` for Dice and F1 as
    background).

    Args:
        values: the mask's values with the header's scaling applied (any shape, any real dtype).

    Returns:
        None for a valid mask (all-zero included), else one line saying what is wrong.
    """
    nonzero = values[values != 0]
    if nonzero.size == 0:
        return None
    lo, hi = nonzero.min(), nonzero.max()
    if lo < 0:
        return f"mask is not binary: negative value {lo:g}"
    if lo != hi:
        distinct = np.unique(nonzero)
        shown = ", ".join(f"{v:g}" for v in distinct[:5]) + (", ..." if distinct.size > 5 else "")
        return f"mask is not binary: {distinct.size} distinct positive values ({shown})"
    value = float(hi)
    # a whole number up to scaling round-off: ISLES'24's sub-stroke0158 mask stores 65535 with scl_slope
    # float32(1/65535), 0.99999999977 in float64
    if abs(value - round(value)) > WHOLE_RTOL * max(1.0, value):
        return (f"mask is not binary: its positive value {value:g} is not a whole number (a probability or "
                "interpolated map?); threshold it to {0, 1} first")
    return None


def read_nifti(path) -> tuple[np.ndarray, np.ndarray, tuple]:
    """A whole 3-D or 4-D NIfTI file, values scaled.

    Args:
        path: a .nii or .nii.gz file.

    Returns:
        (data, affine, spacing): float32 (X, Y, Z) or (X, Y, Z, T) values with the header's scaling
        applied, the (4, 4) voxel-to-world affine in mm, and the (3,) voxel size in mm. A CaseError
        naming the enclosing case folder, the file and the fault on any fault (NaN/Inf values included).
    """
    path = Path(path)
    if not path.is_file():
        raise CaseError(_case_of(path), str(path), "file does not exist")
    try:
        info = read_info(path)
        want = 4 if len(info.shape) >= 4 else 3
        if len(info.shape) != want:
            raise NiftiFileError(path, f"wrong number of dimensions: shape {info.shape}, expected {want}-D")
        raw = read_raw(info)
    except NiftiFileError as exc:
        raise CaseError(_case_of(path), str(path), exc.fault) from None
    if raw.dtype.kind in "fc" and not np.all(np.isfinite(raw)):
        bad = int(np.count_nonzero(~np.isfinite(raw)))
        raise CaseError(_case_of(path), str(path), f"{bad} NaN/Inf voxel value(s)")
    return scaled(info, raw), info.affine, tuple(info.spacing)


# --------------------------------------------------------------------------------------------------


def _case_of(path: Path) -> str:
    """The case folder (case_N, sub-X) a file lies in, for fault lines; else its parent folder's name."""
    for part in reversed(Path(path).parts[:-1]):
        if _CASE_FOLDER.match(part):
            return part
    return Path(path).parent.name or "."


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_exactly(stream, offset: int, nbytes: int, path: Path) -> bytearray:
    """`nbytes` from `offset`, read in chunks so a short stream costs only what it holds."""
    if offset:
        skipped = len(stream.read(offset))
        if skipped < offset:
            raise NiftiFileError(path, f"vox_offset {offset} is past the end of the data")
    body = bytearray()
    while len(body) < nbytes:
        chunk = stream.read(min(_READ_CHUNK, nbytes - len(body)))
        if not chunk:
            raise NiftiFileError(path, f"truncated image data: {offset + len(body)} bytes, the header needs "
                                       f"{offset + nbytes}")
        body += chunk
    return body


def _parse_header(path: Path, block: bytes, compressed: bool, max_bytes: int, keep_dims: int) -> NiftiInfo:
    import nibabel as nib

    if len(block) < 348:
        raise NiftiFileError(path, f"unreadable NIfTI file: truncated header ({len(block)} bytes, a NIfTI "
                                   "header has 348)")
    for order in "<>":
        sizeof_hdr = int(np.frombuffer(block[:4], dtype=f"{order}i4")[0])
        if sizeof_hdr in (348, 540):
            break
    else:
        raise NiftiFileError(path, f"unreadable NIfTI file: not a NIfTI header (sizeof_hdr {sizeof_hdr}, "
                                   "expected 348 or 540)")
    version = 1 if sizeof_hdr == 348 else 2
    if version == 2 and len(block) < 540:
        raise NiftiFileError(path, f"unreadable NIfTI file: truncated header ({len(block)} bytes, a NIfTI-2 "
                                   "header has 540)")
    header_class = nib.Nifti1Header if version == 1 else nib.Nifti2Header
    hdr = np.frombuffer(block[:sizeof_hdr], dtype=header_class.template_dtype.newbyteorder(order))[0]
    magic = bytes(hdr["magic"]).rstrip(b"\x00")
    if magic in (b"ni1", b"ni2"):
        raise NiftiFileError(path, "header points to a separate .img data file; store the image as one .nii")
    if magic not in (b"n+1", b"n+2"):
        raise NiftiFileError(path, f"unreadable NIfTI file: not a NIfTI header (magic {magic!r})")

    dims = [int(d) for d in hdr["dim"]]
    if not 1 <= dims[0] <= 7:
        raise NiftiFileError(path, f"invalid dim[0] {dims[0]} (number of dimensions must be 1..7)")
    stored_shape = tuple(dims[1:dims[0] + 1])
    if min(stored_shape) < 1:
        raise NiftiFileError(path, f"empty or negative dimension in shape {stored_shape}")
    code = int(hdr["datatype"])
    if code not in DATATYPES:
        name = _NAMED_UNSUPPORTED.get(code)
        raise NiftiFileError(path, f"unsupported datatype code {code}" + (f" ({name})" if name else "")
                             + "; expected a real-valued integer or float type")
    dtype = np.dtype(DATATYPES[code]).newbyteorder(order)
    voxels = int(np.prod([int(s) for s in stored_shape], dtype=object))
    if voxels * dtype.itemsize > max_bytes:
        raise NiftiFileError(path, f"header announces {voxels:,} voxels of {dtype.name} "
                                   f"({voxels * dtype.itemsize / 1024**3:.3g} GiB), more than the "
                                   f"{max_bytes / 1024**3:.3g} GiB limit: corrupt header?")
    vox_offset = float(hdr["vox_offset"])
    if not np.isfinite(vox_offset) or vox_offset != int(vox_offset) or vox_offset < sizeof_hdr:
        raise NiftiFileError(path, f"invalid vox_offset {vox_offset:g} (must be a whole number >= {sizeof_hdr})")

    try:
        header = header_class(binaryblock=block[:sizeof_hdr], endianness=order, check=False)
        slope, inter = _scaling(header)
        affine, zooms = _geometry(header, len(stored_shape))
        time_unit = header.get_xyzt_units()[1]
    except NiftiFileError as exc:
        raise NiftiFileError(path, exc.fault) from None
    except Exception as exc:  # nibabel raises several types for inconsistent fields
        raise NiftiFileError(path, f"invalid header ({_describe(exc)})") from None
    shape = stored_shape
    while len(shape) > keep_dims and shape[-1] == 1:
        shape = shape[:-1]  # repairable: trailing singleton dimensions (a one-slice slab stays 3-D)
    return NiftiInfo(path=path, shape=tuple(shape), stored_shape=tuple(stored_shape), dtype=dtype,
                     offset=int(vox_offset), compressed=compressed, affine=affine, zooms=zooms, slope=slope,
                     inter=inter, time_unit=str(time_unit))


def _scaling(header) -> tuple:
    slope, inter = float(header["scl_slope"]), float(header["scl_inter"])
    if np.isinf(slope):
        raise NiftiFileError("", f"invalid scl_slope {slope}")
    if slope == 0 or np.isnan(slope):
        return None, None  # the standard's "no scaling"
    if not np.isfinite(inter):
        raise NiftiFileError("", f"scl_slope {slope:g} with a non-finite scl_inter {inter}")
    return slope, inter


def _geometry(header, ndim: int) -> tuple:
    zooms = tuple(float(z) for z in header["pixdim"][1:ndim + 1])
    spatial = zooms[:3]
    if not all(np.isfinite(z) and z > 0 for z in spatial):
        raise NiftiFileError("", f"non-positive or non-finite voxel spacing {spatial}")
    qcode, scode = int(header["qform_code"]), int(header["sform_code"])
    qform = _qform(header) if qcode > 0 else None
    sform = np.asarray(header.get_sform(coded=False), dtype=np.float64) if scode > 0 else None
    if sform is not None and not np.all(np.isfinite(sform)):
        raise NiftiFileError("", "non-finite sform in the header")
    if qform is not None and sform is not None and not affines_agree(qform, sform):
        diff = float(np.max(np.abs(qform - sform)))
        raise NiftiFileError("", f"qform and sform disagree (max difference {diff:.4g}); which one is the "
                                 "image's position is ambiguous")
    affine = sform if sform is not None else qform
    if affine is None:
        affine = np.diag([*(spatial + (1.0,) * 3)[:3], 1.0])
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise NiftiFileError("", "singular affine in the header")
    return affine, zooms


def _qform(header) -> np.ndarray:
    b, c, d = (float(header[k]) for k in ("quatern_b", "quatern_c", "quatern_d"))
    offsets = [float(header[k]) for k in ("qoffset_x", "qoffset_y", "qoffset_z")]
    if not np.all(np.isfinite([b, c, d, *offsets])):
        raise NiftiFileError("", "non-finite qform quaternion or offset")
    if b * b + c * c + d * d > 1 + 1e-5:
        raise NiftiFileError("", f"invalid qform quaternion (b²+c²+d² = {b * b + c * c + d * d:.4g} > 1)")
    qfac = float(header["pixdim"][0])
    if qfac not in (-1.0, 0.0, 1.0):
        raise NiftiFileError("", f"invalid qfac pixdim[0] {qfac:g} (must be 1 or -1)")
    if qfac == 0.0:  # the standard reads 0 as 1
        header = header.copy()
        header["pixdim"][0] = 1.0
    return np.asarray(header.get_qform(coded=False), dtype=np.float64)
