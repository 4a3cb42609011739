"""The safe NIfTI reader: each header fault is one named error, found before any allocation."""

import gzip

import nibabel as nib
import numpy as np
import pytest

from islesbench import layouts
from islesbench.errors import IslesbenchError
from islesbench.imaging import nifti_io

AFFINE = np.array([[-0.9, 0, 0, 10.0], [0, 0.9, 0, -5.0], [0, 0, 5.0, 3.0], [0, 0, 0, 1]])


def _write(path, data=None, dtype=np.float32):
    data = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7) if data is None else data
    layouts.save_nifti(path, data, AFFINE, dtype=dtype)
    return path


def _patch(path, **fields):
    """Overwrite NIfTI-1 header fields in place (gzip or not)."""
    gz = str(path).endswith(".gz")
    raw = bytearray(gzip.decompress(path.read_bytes()) if gz else path.read_bytes())
    hdr = np.frombuffer(raw[:348], dtype=nib.Nifti1Header.template_dtype).copy()
    for name, value in fields.items():
        hdr[name] = value
    raw[:348] = hdr.tobytes()
    path.write_bytes(gzip.compress(bytes(raw), mtime=0) if gz else bytes(raw))
    return path


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_reads_what_save_nifti_wrote_like_nibabel(tmp_path, suffix):
    path = _write(tmp_path / f"a{suffix}", dtype=np.int16)
    data, affine, spacing = nifti_io.read_image(path)
    ref = nib.load(str(path))
    np.testing.assert_array_equal(data, np.asanyarray(ref.dataobj, dtype=np.float32))
    np.testing.assert_allclose(affine, ref.affine)
    assert spacing == pytest.approx((0.9, 0.9, 5.0))


def test_big_endian_nifti2_and_trailing_singleton(tmp_path):
    data = np.random.default_rng(0).random((4, 5, 6, 1)).astype(">f4")
    nib.save(nib.Nifti2Image(data, AFFINE), str(tmp_path / "b.nii"))
    out, _, _ = nifti_io.read_image(tmp_path / "b.nii", ndim=3)
    np.testing.assert_array_equal(out, data[..., 0])


def test_header_announcing_1e12_voxels_is_refused_before_allocation(tmp_path, monkeypatch):
    path = _patch(_write(tmp_path / "huge.nii.gz"), dim=[3, 10000, 10000, 10000, 1, 1, 1, 1])
    monkeypatch.setattr(nifti_io, "_read_exactly", lambda *a: pytest.fail("data was read"))
    with pytest.raises(nifti_io.NiftiFileError, match=r"1,000,000,000,000 voxels.*limit") as err:
        nifti_io.read_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("fields, fault", [
    ({"dim": [3, 5, 0, 7, 1, 1, 1, 1]}, "empty or negative dimension"),
    ({"dim": [3, 5, -6, 7, 1, 1, 1, 1]}, "empty or negative dimension"),
    ({"dim": [9, 5, 6, 7, 1, 1, 1, 1]}, "invalid dim"),
    ({"datatype": 32}, "unsupported datatype code 32"),
    ({"datatype": 999}, "unsupported datatype code 999"),
    ({"vox_offset": 10**7}, "past the end"),
    ({"vox_offset": 100}, "invalid vox_offset"),
    ({"scl_slope": np.inf}, "invalid scl_slope"),
    ({"scl_slope": 2.0, "scl_inter": np.nan}, "non-finite scl_inter"),
    ({"srow_x": [-0.9, 0, 0, 60.0]}, "qform and sform disagree"),
    ({"quatern_b": 2.0}, "invalid qform quaternion"),
    ({"pixdim": [1, 0.9, -1, 5, 1, 1, 1, 1]}, "voxel spacing"),
    ({"magic": b"ni1"}, "separate .img"),
    ({"sizeof_hdr": 1234}, "not a NIfTI header"),
])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_header_faults_are_named(tmp_path, fields, fault, suffix):
    path = _patch(_write(tmp_path / f"bad{suffix}"), **fields)
    with pytest.raises(nifti_io.NiftiFileError) as err:
        nifti_io.read_image(path)
    assert fault in str(err.value) and str(path) in str(err.value)
    assert isinstance(err.value, IslesbenchError)


@pytest.mark.parametrize("slope", [0.0, np.nan])
def test_scl_slope_zero_or_nan_means_unscaled(tmp_path, slope):
    path = _patch(_write(tmp_path / "s.nii.gz", dtype=np.int16), scl_slope=slope, scl_inter=7.0)
    data, _, _ = nifti_io.read_image(path)
    assert data.max() == 5 * 6 * 7 - 1


def test_4d_where_3d_expected(tmp_path):
    layouts.save_nifti(tmp_path / "pwi.nii.gz", np.zeros((4, 4, 3, 5), np.float32), AFFINE)
    with pytest.raises(nifti_io.NiftiFileError, match=r"shape \(4, 4, 3, 5\), expected 3-D"):
        nifti_io.read_image(tmp_path / "pwi.nii.gz", ndim=3)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncation_anywhere_is_one_named_line(tmp_path, suffix):
    whole = _write(tmp_path / f"w{suffix}").read_bytes()
    for cut in [0, 10, 200, 347, 352, len(whole) // 2, len(whole) - 1]:
        path = tmp_path / f"t{cut}{suffix}"
        path.write_bytes(whole[:cut])
        with pytest.raises(nifti_io.NiftiFileError) as err:
            nifti_io.read_image(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(nifti_io.NiftiFileError, match="does not exist"):
        nifti_io.read_image(tmp_path / "nope.nii.gz")


def test_one_slice_slab_stays_3d(tmp_path):
    layouts.save_nifti(tmp_path / "one.nii.gz", np.ones((4, 5, 1), np.float32), AFFINE)
    assert nifti_io.read_image(tmp_path / "one.nii.gz")[0].shape == (4, 5, 1)


@pytest.mark.parametrize("values, fault", [
    ((0, 1), None), ((0, 255), None), ((0.0, 1.0), None), ((0, 0), None),
    ((0, 0.5), "positive value 0.5 is not a whole number"), ((0, 0.99), "0.99 is not a whole number"),
    ((0, 65535 * 1.5259021893143654e-05), None),  # ISLES'24 sub-stroke0158: uint16 65535, slope float32(1/65535)
    ((0, 1, 2), "2 distinct positive values"), ((0, -1), "negative value -1"),
])
def test_mask_fault_rule(values, fault):
    found = nifti_io.mask_fault(np.array(values, dtype=np.float32))
    assert found is None if fault is None else fault in found
