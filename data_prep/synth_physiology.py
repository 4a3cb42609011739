"""The synthetic head and its perfusion: the physiology every synthetic layout writes.

Each patient is a head phantom: scalp, skull (bone 600-1600 HU), subarachnoid and sulcal CSF, lateral
and third ventricles, folded cortical and deep grey matter, white matter (some patients with
hypoperfused periventricular white matter), and usually an MCA-territory-like lesion in one
hemisphere: an irregular infarct core inside a larger penumbra.

Perfusion maps follow PAPER.md: grey matter CBF 50-70 mL/100 g/min, CBV 3-5 mL/100 g, MTT 3.5-5 s;
white matter CBF 18-30, CBV 1.5-2.5, MTT 4-6 s; Tmax 0-2 s in normal tissue. Penumbra: CBF reduced
to 45-80 % of normal, CBV normal or raised, Tmax 6.5-10 s. Core: CBF below 30 % of the normal mean,
CBV reduced, Tmax 9-14 s. MTT = 60·CBV/CBF is computed from the stored CBV and CBF, so it holds to
float32 rounding. The CT-perfusion core (where perfusion drops) is the true core displaced by a noisy
boundary, as core on CTP and lesion on DWI disagree in real data; with the penumbra's reduced CBF,
hypoperfused white matter and CSF this keeps a plain rCBF < 30 % threshold imperfect while the maps
together (Tmax, CBV, rCBF) separate the core much better. The 4-D series (`pwi_series`) is a short run
(16-20 frames, 2-3 s apart) of gamma-variate tissue curves with area proportional to CBV, delayed by
Tmax, on top of the CT baseline.

`make_head` draws everything but the sampling: the caller (synth_isles2018: thin slabs;
synth_isles24: whole brain) chooses in-plane spacing, slice heights and where the lesion may lie.
Anatomy is laid out relative to the field of view: at n = 256 the millimetres are realistic; a smaller
n is the same head at a coarser grid.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from islesbench.errors import IslesbenchError

# Tissue labels of the phantom.
AIR, SCALP, BONE, CSF, GM, WM = 0, 1, 2, 3, 4, 5
FOV_HALF_MM = 115.0  # anatomy is laid out on a +-1 grid that stands for +-115 mm (256 x 0.9 mm)


@dataclass
class SyntheticPatient:
    """One phantom head over all its slabs; arrays are (X, Y, Z) over the whole covered z-range."""

    patient_id: str
    lesion_kind: str  # "core", "penumbra-only" or "none"
    side: str  # "left" / "right" (x < 0 / x > 0 in voxel index), "" without lesion
    spacing: tuple  # (dx, dy, dz) mm
    origin: tuple  # world position of voxel (0, 0, 0) of the first slab
    slab_depths: tuple  # slices per slab, in z order
    labels: np.ndarray  # uint8 tissue labels
    penumbra: np.ndarray  # bool: hypoperfused region, core included
    core: np.ndarray  # bool: the ground-truth infarct core (OT)
    maps: dict  # CT, CT_CBF, CT_CBV, CT_MTT, CT_Tmax: float32, exactly the values written
    cbf_reference: float  # mean normal CBF over grey and white matter (the "contralateral normal")
    pwi: dict  # frames, interval_s, arrival_s, k_hu
    dtypes: dict = field(default_factory=dict)  # modality -> (dtype, scaling)

    @property
    def affine(self) -> np.ndarray:
        """Voxel-to-world affine of the first slab (x and y flipped as from DICOM LPS)."""
        dx, dy, dz = self.spacing
        a = np.diag([-dx, -dy, dz, 1.0])
        a[:3, 3] = self.origin
        return a

    def slab_affine(self, k: int) -> np.ndarray:
        """Affine of slab k: the first slab's, shifted by the slices of the slabs before it."""
        a = self.affine
        a[2, 3] = as_float32(self.origin[2] + self.spacing[2] * sum(self.slab_depths[:k]))
        return a

    def slab_slice(self, k: int) -> slice:
        """The z-range of slab k in the patient arrays."""
        start = sum(self.slab_depths[:k])
        return slice(start, start + self.slab_depths[k])


def as_float32(x: float) -> float:
    """Round to a float32-representable value (NIfTI headers store float32)."""
    return float(np.float32(x))


# --------------------------------------------------------------------------------------------------
# random fields


def smooth_field(rng, shape: tuple, corr_mm: float, mm_inplane: float, dz: float) -> np.ndarray:
    """Unit-variance Gaussian random field with correlation length ~corr_mm, float32, on `shape`.

    Generated on a coarse in-plane grid, smoothed, then zoomed linearly: cheap at 256^2.
    """
    n, _, depth = shape
    corr_vox = corr_mm / mm_inplane
    factor = int(np.clip(corr_vox // 2, 1, 8))
    nc = -(-n // factor)
    noise = rng.standard_normal((nc, nc, depth), dtype=np.float32)
    sigma_z = corr_mm / dz
    field_ = ndimage.gaussian_filter(noise, (corr_vox / factor, corr_vox / factor, sigma_z if sigma_z > 0.3 else 0))
    field_ /= max(float(field_.std()), 1e-6)
    if factor > 1:
        field_ = ndimage.zoom(field_, (n / nc, n / nc, 1), order=1, grid_mode=True, mode="nearest")
    return np.ascontiguousarray(field_[:n, :n, :depth], dtype=np.float32)


def _soft(mask: np.ndarray, sigma_vox: float, sigma_z: float) -> np.ndarray:
    """A smoothed indicator: 1 deep inside the mask, 0 far outside, a ramp across the boundary."""
    return ndimage.gaussian_filter(mask.astype(np.float32), (sigma_vox, sigma_vox, sigma_z))


# --------------------------------------------------------------------------------------------------
# one patient


def make_head(rng, n: int, dx: float, dz: float, w: np.ndarray, origin: tuple, lesion_kind: str = "core",
              patient_id: str = "P000", slab_depths: tuple = (), lesion_rz_floor_mm: float = 0.0,
              lesion_centre_mm=None) -> SyntheticPatient:
    """Draw a head on an n x n in-plane grid at slice heights `w` (mm), continuing `rng`.

    `lesion_rz_floor_mm` is the least half-height of the lesion ellipsoid, `lesion_centre_mm(rng)` draws
    its height (mm). Deterministic in the state of `rng`.

    Long on purpose: every tissue, map and the lesion draw from the one `rng` in a fixed order, so a
    split into helpers would have to pass that order along (and any reordering changes every cohort).
    """
    if lesion_centre_mm is None:
        def lesion_centre_mm(r):
            return w[0] + r.uniform(0.3, 0.7) * (w[-1] - w[0])
    mm = 2 * FOV_HALF_MM / n  # anatomy millimetres per voxel in-plane
    L = FOV_HALF_MM
    total = len(w)
    grid = (np.arange(n, dtype=np.float32) + 0.5 - n / 2) / (n / 2)
    cu, cv = rng.normal(0, 0.015, 2)
    theta = math.radians(rng.uniform(-4, 4))
    u = grid[:, None, None] - np.float32(cu)
    v = grid[None, :, None] - np.float32(cv)
    x = np.float32(math.cos(theta)) * u + np.float32(math.sin(theta)) * v  # lateral
    y = -np.float32(math.sin(theta)) * u + np.float32(math.cos(theta)) * v  # antero-posterior
    wz = w[None, None, :]
    shape = (n, n, total)

    # --- head layers ---------------------------------------------------------------------------
    ax, ay = rng.uniform(0.60, 0.68), rng.uniform(0.76, 0.84)
    c = np.sqrt(np.clip(1 - (wz / np.where(wz > 0, 95.0, 125.0)) ** 2, 0.04, 1)).astype(np.float32)
    r = np.sqrt((x / (ax * c)) ** 2 + (y / (ay * c)) ** 2)
    depth_mm = (1 - r) * (math.sqrt(ax * ay) * c * L)  # approximate depth below the scalp surface
    scalp_t = rng.uniform(3.5, 6.0)
    bone_t = rng.uniform(5.0, 8.0) + 1.2 * smooth_field(rng, shape, 20, mm, dz)
    brain_depth = depth_mm - (scalp_t + bone_t + 1.0)
    labels = np.full(shape, AIR, np.uint8)
    labels[depth_mm > 0] = SCALP
    labels[depth_mm > scalp_t] = BONE
    labels[brain_depth > -1.0] = CSF  # subarachnoid space
    brain = brain_depth > 0
    atrophy = rng.uniform(0.6, 1.4)

    f_sulci = smooth_field(rng, shape, 5.0, mm, dz)
    f_depth = smooth_field(rng, shape, 12.0, mm, dz)
    sulcal_depth = rng.uniform(14, 22) * (1 + 0.3 * f_depth)
    sulcus = (np.abs(f_sulci) < 0.10 * atrophy) & (brain_depth < sulcal_depth)
    cortex = (brain_depth < 2.5 + 0.8 * f_depth) | ((np.abs(f_sulci) < 0.55) & (brain_depth < sulcal_depth + 3))
    labels[brain] = WM
    labels[brain & cortex] = GM
    # deep grey matter: basal ganglia and thalami, bilateral
    for (gx, gy, sx, sy, zc, sz) in ((0.22, 0.06, 0.08, 0.15, 0.0, 20.0), (0.10, -0.13, 0.07, 0.09, -2.0, 16.0)):
        for side in (-1, 1):
            e = ((x - side * gx) / sx) ** 2 + ((y - gy) / sy) ** 2 + ((wz - zc) / sz) ** 2
            labels[brain & (e < 1)] = GM
    labels[brain & sulcus] = CSF
    # interhemispheric fissure and ventricles
    fissure = (np.abs(x) * L < (0.8 + 0.6 * atrophy)) & (brain_depth < rng.uniform(30, 45))
    labels[brain & fissure] = CSF
    f_vent = smooth_field(rng, shape, 8.0, mm, dz)
    vx, vw = rng.uniform(0.06, 0.09), 0.035 * atrophy
    ventricles = np.zeros(shape, bool)
    for side in (-1, 1):
        bend = 0.08 * (y / 0.3) ** 2  # banana shape: horns bend laterally
        e = ((x - side * (vx + bend)) / vw) ** 2 + ((y - 0.02) / 0.30) ** 2 + ((wz - 18.0) / 24.0) ** 2
        ventricles |= e + 0.25 * f_vent < 1
    e3 = (x / (0.012 * atrophy)) ** 2 + ((y + 0.05) / 0.11) ** 2 + ((wz + 2.0) / 14.0) ** 2
    ventricles |= e3 < 1
    labels[brain & ventricles] = CSF
    tissue = (labels == GM) | (labels == WM)
    # The perfusion software's brain mask: parenchyma with its sulci and ventricles; the thin CSF
    # shell under the skull is zeroed with the bone, as in ISLES maps.
    in_brain = brain

    # --- normal perfusion -------------------------------------------------------------------------
    cbf_gm, mtt_gm = rng.uniform(58, 72), rng.uniform(3.8, 4.6)  # before partial volume
    cbf_wm, mtt_wm = rng.uniform(19, 28), rng.uniform(4.4, 5.6)
    cbf_csf, mtt_csf = rng.uniform(1.5, 3.5), rng.uniform(4.0, 6.0)
    tmax_normal = rng.uniform(0.3, 1.4)
    base_cbf = np.select([labels == GM, labels == WM, labels == CSF], [cbf_gm, cbf_wm, cbf_csf], 0).astype(np.float32)
    base_mtt = np.select([labels == GM, labels == WM, labels == CSF], [mtt_gm, mtt_wm, mtt_csf], 0).astype(np.float32)
    tex_cbf = smooth_field(rng, shape, 9.0, mm, dz)
    tex_mtt = smooth_field(rng, shape, 11.0, mm, dz)
    cbf = base_cbf * (1 + 0.08 * tex_cbf)
    mtt = base_mtt * (1 + 0.06 * tex_mtt)
    tmax = np.where(in_brain, tmax_normal + 0.35 * smooth_field(rng, shape, 10.0, mm, dz), 0).astype(np.float32)
    tmax[labels == CSF] += 1.2 + 1.0 * np.abs(tex_mtt[labels == CSF])  # deconvolution is noisy in CSF
    # hypoperfused periventricular white matter (small-vessel disease) in some patients: low CBF,
    # normal Tmax -- a confound for CBF-only rules
    leuko = rng.uniform(0, 1) < 0.6
    f_leuko = smooth_field(rng, shape, 7.0, mm, dz)
    deep_wm = (labels == WM) & (brain_depth > 12)
    leuko_mask = deep_wm & (f_leuko > rng.uniform(0.6, 1.2)) if leuko else np.zeros(shape, bool)
    cbf[leuko_mask] *= rng.uniform(0.45, 0.65)
    mtt[leuko_mask] *= 1.25
    cbf_reference = float(cbf[tissue].mean()) if tissue.any() else 35.0
    cbv = cbf * mtt / 60.0

    # --- lesion ------------------------------------------------------------------------------------
    penumbra = np.zeros(shape, bool)
    core = np.zeros(shape, bool)
    side_sign = int(rng.choice([-1, 1]))
    params = {}
    if lesion_kind != "none":
        rp = math.exp(rng.uniform(math.log(14), math.log(42)))  # penumbra radius (mm)
        if lesion_kind == "penumbra-only":
            rp *= 0.7
        rx, ry = rp * rng.uniform(0.75, 1.1), rp * rng.uniform(0.9, 1.4)
        rz = max(rp * rng.uniform(0.8, 1.5), lesion_rz_floor_mm)
        xc = side_sign * rng.uniform(0.25, 0.42) * ax
        yc = rng.uniform(-0.25, 0.30) * ay
        # keep the lesion in the covered z-range; two-slab patients straddle the slab boundary
        wc = float(lesion_centre_mm(rng))
        rho = np.sqrt(((x - xc) * L / rx) ** 2 + ((y - yc) * L / ry) ** 2 + ((wz - wc) / rz) ** 2)
        n_pen = smooth_field(rng, shape, 9.0, mm, dz)
        hemisphere = side_sign * x * L > 2.0
        penumbra = (rho - 1 + 0.30 * n_pen < 0) & in_brain & hemisphere
        kc = rng.uniform(0.45, 0.8)
        n_core = smooth_field(rng, shape, 6.0, mm, dz)
        phi_core = rho / kc - 1 + 0.35 * n_core
        if lesion_kind == "core":
            core = (phi_core < 0) & penumbra & tissue
        # Where CT perfusion shows core: the DWI core with a noisy, biased boundary.
        n_mis = smooth_field(rng, shape, 3.0, mm, dz)
        bias = rng.uniform(-0.08, 0.12)
        perf_core = (phi_core + 0.2 * n_mis + bias < 0) & penumbra if lesion_kind == "core" else np.zeros(shape, bool)
        sev = 0.5 * _soft(penumbra, 2.0 / mm, 0.3) + 0.5 * _soft(perf_core, 1.5 / mm, 0.3)
        sev *= in_brain
        f_p, g_p = rng.uniform(0.45, 0.8), rng.uniform(1.0, 1.25)  # penumbra: CBF, CBV factors
        g_c = rng.uniform(0.3, 0.55)  # core CBV factor
        t_p, t_c = rng.uniform(7.2, 10.0), rng.uniform(10.0, 14.0)
        rc = np.clip(0.13 + 0.07 * smooth_field(rng, shape, 4.0, mm, dz), 0.03, 0.45)  # core rCBF
        # Not all core shows rCBF < 30 %: in a patchy part of it (about a quarter) flow is only moderately
        # reduced while CBV has collapsed and Tmax is very long, the signature CBV- and Tmax-based core
        # definitions rely on. The plain rCBF rule misses it; a model reading every map need not.
        moderate = smooth_field(rng, shape, 7.0, mm, dz) > 0.7
        rc = np.where(moderate, np.clip(0.40 + 0.06 * smooth_field(rng, shape, 4.0, mm, dz), 0.3, 0.55), rc)
        g_core = np.where(moderate, g_c * 0.8, g_c)
        lo = np.minimum(sev, 0.5) * 2  # 0 -> 1 across the penumbra
        hi = np.clip(sev * 2 - 1, 0, 1)  # 0 -> 1 across the core boundary
        cbf_pen = cbf * (1 - lo * (1 - f_p))
        cbf = cbf_pen * (1 - hi) + (cbf_reference * rc) * hi
        cbv_pen = cbv * (1 + lo * (g_p - 1))
        cbv = cbv_pen * (1 - hi) + cbv * g_core * hi
        tmax_les = t_p + 0.6 * n_pen
        tmax = tmax * (1 - lo) + tmax_les * lo
        tmax = tmax * (1 - hi) + (t_c + 2.0 * moderate + 0.8 * n_core) * hi
        params = {
            "penumbra_radius_mm": round(rp, 2),
            "core_fraction": round(kc, 3),
            "penumbra_cbf_factor": round(f_p, 3),
            "penumbra_cbv_factor": round(g_p, 3),
            "core_cbv_factor": round(g_c, 3),
            "core_boundary_bias": round(bias, 3),
            "penumbra_tmax_s": round(t_p, 2),
            "core_tmax_s": round(t_c, 2),
        }

    # --- acquisition: partial volume, noise, quantisation -------------------------------------------
    pv = (0.7 / mm, 0.7 / mm, 0)
    cbf = ndimage.gaussian_filter(cbf.astype(np.float32), pv)
    cbv = ndimage.gaussian_filter(cbv.astype(np.float32), pv)
    tmax = ndimage.gaussian_filter(tmax.astype(np.float32), pv)
    noise = rng.standard_normal(shape, dtype=np.float32)
    cbf = cbf * (1 + 0.05 * noise) + 0.8 * rng.standard_normal(shape, dtype=np.float32)
    cbv = cbv * (1 + 0.05 * rng.standard_normal(shape, dtype=np.float32))
    tmax = tmax + 0.35 * rng.standard_normal(shape, dtype=np.float32)
    cbf = np.where(in_brain, np.maximum(cbf, 0.3), 0).astype(np.float32)
    cbv = np.where(in_brain, np.maximum(cbv, 0.01), 0).astype(np.float32)
    cbv = (np.rint(cbv / 0.001) * 0.001).astype(np.float32)  # the int16 (slope 0.001) values on disk
    tmax = np.where(in_brain, np.maximum(tmax, 0), 0).astype(np.float32)
    tmax_int = rng.uniform() < 0.5
    if tmax_int:
        tmax = (np.rint(tmax / 0.01) * 0.01).astype(np.float32)
    mtt = np.zeros(shape, np.float32)
    np.divide(np.float32(60) * cbv, cbf, out=mtt, where=in_brain)

    # --- CT baseline (HU) --------------------------------------------------------------------------
    hu = np.select(
        [labels == SCALP, labels == BONE, labels == CSF, labels == GM, labels == WM],
        [rng.uniform(30, 55), 1100.0, rng.uniform(3, 10), rng.uniform(37, 43), rng.uniform(26, 31)],
        -1000.0,
    ).astype(np.float32)
    bone = labels == BONE
    hu[bone] += 380 * f_depth[bone] + 150 * f_sulci[bone]
    hu[in_brain] += 1.5 * tex_cbf[in_brain]
    hu[core] -= rng.uniform(1.0, 4.0)  # early ischaemic hypodensity
    hu = ndimage.gaussian_filter(hu, (0.5, 0.5, 0)) + 3.5 * rng.standard_normal(shape, dtype=np.float32)
    hu = np.clip(np.rint(hu), -1024, 3000).astype(np.float32)

    pwi = {
        "frames": int(rng.integers(16, 21)),
        "interval_s": float(rng.choice([2.0, 2.5, 3.0])),
        "arrival_s": round(float(rng.uniform(3.0, 6.0)), 3),
        "k_hu": round(float(rng.uniform(50, 65)), 3),
        "noise_hu": 4.0,
        "noise_seed": int(rng.integers(0, 2**31 - 1)),
        "alpha": 3.0,
    }
    return SyntheticPatient(
        patient_id=patient_id,
        lesion_kind=lesion_kind,
        side=("left" if side_sign < 0 else "right") if lesion_kind != "none" else "",
        spacing=(dx, dx, dz),
        origin=origin,
        slab_depths=tuple(slab_depths),
        labels=labels,
        penumbra=penumbra,
        core=core,
        maps={"CT": hu, "CT_CBF": cbf, "CT_CBV": cbv, "CT_MTT": mtt, "CT_Tmax": tmax},
        cbf_reference=cbf_reference,
        pwi={**pwi, "lesion": params},
        dtypes={
            "CT": (np.uint16, (1.0, -1024.0)),
            "CT_4DPWI": (np.int16, None),
            "CT_CBF": (np.float32, None),
            "CT_CBV": (np.int16, (0.001, 0.0)),
            "CT_MTT": (np.float32, None),
            "CT_Tmax": (np.int16, (0.01, 0.0)) if tmax_int else (np.float32, None),
            "OT": (np.uint8, None),
        },
    )


def pwi_series(patient: SyntheticPatient, zslice: slice) -> np.ndarray:
    """CT_4DPWI for a z-range: CT baseline + gamma-variate tissue curves (area K·CBV, delay Tmax)."""
    p = patient.pwi
    ct = patient.maps["CT"][:, :, zslice]
    cbv = patient.maps["CT_CBV"][:, :, zslice]
    mtt = patient.maps["CT_MTT"][:, :, zslice]
    tmax = patient.maps["CT_Tmax"][:, :, zslice]
    rng = np.random.default_rng([p["noise_seed"], zslice.start])
    frames, dt, alpha = p["frames"], p["interval_s"], p["alpha"]
    idx = np.nonzero(cbv > 0)
    amp = (p["k_hu"] * cbv[idx]).astype(np.float32)
    beta = ((3.0 + np.minimum(mtt[idx], 30.0)) / (alpha + 1)).astype(np.float32)
    delay = (p["arrival_s"] + tmax[idx]).astype(np.float32)
    norm = amp / (math.gamma(alpha + 1) * beta ** (alpha + 1))
    out = np.empty(ct.shape + (frames,), np.int16)
    for k in range(frames):
        tt = np.maximum(np.float32(k * dt) - delay, 0)
        frame = ct + np.float32(p["noise_hu"]) * rng.standard_normal(ct.shape, dtype=np.float32)
        frame[idx] += norm * tt**alpha * np.exp(-tt / beta)
        out[..., k] = np.clip(np.rint(frame), -1024, 32767).astype(np.int16)
    return out


def check_cohort_size(cases: int, test_cases: int, size: int, min_size: int) -> None:
    """Refuse a cohort of no case, or an in-plane matrix below `min_size` (one line each)."""
    if cases < 0 or test_cases < 0 or cases + test_cases < 1:
        raise IslesbenchError("synth needs at least one case (--cases/--test-cases >= 0, not both 0)")
    if size < min_size:
        raise IslesbenchError(f"--size must be at least {min_size}, not {size}")


def clear_previous_cohort(out: Path, folders, cohort_file: str) -> None:
    """Remove the `folders` of a previous synthetic cohort in `out` (it has `cohort_file`); refuse to touch
    the same folders when they hold other data."""
    out = Path(out)
    ours = [out / d for d in folders if (out / d).exists()]
    if not ours:
        return
    if not (out / cohort_file).is_file():
        raise IslesbenchError(f"{out} already holds {'/'.join(folders)} data that is not a synthetic cohort "
                              f"(no {cohort_file}); choose another --out")
    for folder in ours:
        shutil.rmtree(folder)
    (out / cohort_file).unlink()
