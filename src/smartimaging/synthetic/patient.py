"""One synthetic FDG PET/CT patient in memory: CT (HU), PET (Bq/ml), lesion truth, header facts."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from smartimaging.exceptions import ConfigError
from smartimaging.image import Image
from smartimaging.synthetic import phantom as ph
from smartimaging.synthetic.outcomes import ClinicalRecord, clinical_record

__all__ = [
    "F18_HALF_LIFE_S",
    "SITES",
    "LesionTruth",
    "SiteProfile",
    "SyntheticPatient",
    "make_patient",
]

F18_HALF_LIFE_S = 6586.2
CT_PIXELS = 128
CT_PIXEL_MM = 500.0 / CT_PIXELS  # 3.90625 mm, exact in decimal
CT_SLICE_MM = 3.0
PET_INT16_MAX = 32767
# a lesion's plateau counts as exact when blurring changes its centre by at most this fraction
_PLATEAU_TOLERANCE = 0.002


@dataclass(frozen=True)
class SiteProfile:
    """Scanner and reconstruction of one site (they differ so that harmonisation matters)."""

    name: str
    pixel_mm: float
    matrix: int
    slice_mm: float
    fwhm_mm: float
    noise: float
    calibration: float
    manufacturer: str
    model: str
    reconstruction: str
    institution: str
    weight: float

    @property
    def sigma_mm(self) -> float:
        """Standard deviation (mm) of the Gaussian point-spread function."""
        return self.fwhm_mm / (2.0 * math.sqrt(2.0 * math.log(2.0)))


SITES: dict[str, SiteProfile] = {
    "SITE_A": SiteProfile(
        "SITE_A", 4.0, 125, 4.0, 6.0, 0.10, 1.00, "Helios Medical Systems", "Helios PET/CT 600",
        "OSEM 3D 3i21s TOF", "Synthetic University Hospital A", 0.45,
    ),
    "SITE_B": SiteProfile(
        "SITE_B", 5.3, 96, 5.3, 8.0, 0.16, 1.07, "Nordlicht Imaging", "NL Vision 450",
        "OSEM 2D 2i16s", "Synthetic Regional Hospital B", 0.35,
    ),
    "SITE_C": SiteProfile(
        "SITE_C", 3.65, 137, 3.27, 5.0, 0.12, 0.96, "Aurora Diagnostics", "Aurora DMI 3R",
        "BPL beta 450", "Synthetic Cancer Centre C", 0.20,
    ),
}  # fmt: skip

# background SUV of the organs that can hold lesions, and the least plateau SUV there so that
# a 40 % SUVmax threshold separates an isolated lesion from its surroundings
_LESION_ORGANS = ("lung", "liver", "abdomen")
_LESION_HU = {"lung": 35.0, "liver": 32.0, "abdomen": 40.0}


@dataclass(frozen=True)
class LesionTruth:
    """Programmed properties of one lesion (what ``truth.csv`` records)."""

    patient_id: str
    lesion: int
    roi_name: str
    organ: str
    shape: str
    centre_mm: tuple[float, float, float]
    volume_ml: float
    volume_pet_ml: float
    volume_ct_ml: float
    suvmax_programmed: float
    suv_core: float
    suv_rim: float
    suv_necrosis: float | None
    heterogeneity: float
    texture_amplitude: float
    plateau_centre_mm: tuple[float, float, float]
    plateau_radius_mm: float
    plateau_exact: bool
    plateau_recovery: float
    plateau_bqml: float
    decayed_dose_bq: float
    weight_kg: float
    calibration: float
    expected_suvbw_plateau: float


@dataclass(eq=False)
class SyntheticPatient:
    """An in-memory synthetic patient.

    Attributes
    ----------
    ct : Image
        CT in HU (int16 array) on the CT grid.
    pet_bqml : Image
        PET activity concentration in Bq/ml decay-corrected to the series start (float32), exactly
        the values the DICOM series stores (after per-slice integer scaling).
    lesion_labels : Image
        Lesion labels on the PET grid (0 background, 1..n).
    ct_lesion_labels : Image
        Lesion labels on the CT grid (used for the RTSTRUCT).
    lesions : list of LesionTruth
        Programmed lesion properties; lesion 1 (``GTV_1``) is the largest.
    body : BodyModel
        The build the anatomy was drawn from (``phantom.anatomy_labels(grid, body)`` gives the
        tissue map on any grid).
    physiology : dict
        Programmed SUV of each tissue label.
    """

    index: int
    seed: int
    patient_id: str
    site: SiteProfile
    sex: str
    age: int
    birth_date: dt.date
    weight_kg: float
    height_m: float
    dose_bq: float
    injection_datetime: dt.datetime
    series_datetime: dt.datetime
    ct_datetime: dt.datetime
    decayed_dose_bq: float
    heterogeneity: float
    ct: Image
    pet_bqml: Image
    lesion_labels: Image
    ct_lesion_labels: Image
    lesions: list[LesionTruth]
    clinical: ClinicalRecord
    pet_slopes: list[str] = field(repr=False)
    pet_stored: np.ndarray = field(repr=False)
    body: ph.BodyModel | None = field(default=None, repr=False)
    physiology: dict[str, float] = field(default_factory=dict)
    noise: bool = True

    @property
    def uptake_minutes(self) -> float:
        """Time from injection to the PET series start (min)."""
        return (self.series_datetime - self.injection_datetime).total_seconds() / 60.0

    @property
    def n_lesions(self) -> int:
        """Number of lesions."""
        return len(self.lesions)


def _patient_id(index: int) -> str:
    return f"SYN{index + 1:03d}"


def _grids(site: SiteProfile, n_slices: int, z_bottom: float) -> tuple[ph.Grid, ph.Grid]:
    length = n_slices * CT_SLICE_MM
    x0 = -(CT_PIXELS - 1) / 2.0 * CT_PIXEL_MM
    ct = ph.Grid(
        (n_slices, CT_PIXELS, CT_PIXELS), (CT_PIXEL_MM, CT_PIXEL_MM, CT_SLICE_MM), (x0, x0, z_bottom + 1.5)
    )
    n_pet = round(length / site.slice_mm)
    zc = z_bottom + length / 2.0
    p0 = round(-(site.matrix - 1) / 2.0 * site.pixel_mm, 4)
    pz0 = round(zc - (n_pet - 1) / 2.0 * site.slice_mm, 4)
    pet = ph.Grid(
        (n_pet, site.matrix, site.matrix), (site.pixel_mm, site.pixel_mm, site.slice_mm), (p0, p0, pz0)
    )
    return ct, pet


def _physiology(rng: np.random.Generator) -> dict[str, float]:
    liver = float(rng.uniform(1.9, 2.6))
    return {
        "air": 0.0,
        "fat": 0.3,
        "soft_tissue": float(rng.uniform(0.6, 0.95)),
        "lung": 0.45,
        "liver": liver,
        "spleen": 0.85 * liver,
        "kidney": float(rng.uniform(2.5, 4.5)),
        "renal_pelvis": float(rng.uniform(5.0, 15.0)),
        "bladder": float(rng.uniform(8.0, 40.0)),
        "blood": float(rng.uniform(1.4, 1.9)),
        "myocardium": float(math.exp(rng.uniform(math.log(1.8), math.log(10.0)))),
        "bone": 0.6,
        "marrow": float(rng.uniform(1.2, 2.0)),
        "spinal_canal": 0.5,
        "disc": 0.8,
        "table": 0.0,
    }


def _inside_ellipsoid(p: np.ndarray, centre: np.ndarray, semi: np.ndarray) -> bool:
    return bool(np.sum(((p - centre) / semi) ** 2) <= 1.0)


def _place(
    rng: np.random.Generator,
    lesion: ph.LesionModel,
    body: ph.BodyModel,
    placed: list[ph.LesionModel],
) -> bool:
    """Choose an organ and a centre for ``lesion`` away from hot organs and other lesions."""
    organs = body.organs()
    r = lesion.r_out
    y_vb, r_vb = body.spine
    ax_x, ax_y, ax_r, ax_s0, ax_s1 = body.aorta
    weights = np.array([0.45, 0.3, 0.25])
    for _ in range(300):
        organ = str(rng.choice(_LESION_ORGANS, p=weights))
        key = organ if organ != "lung" else str(rng.choice(["lung_right", "lung_left"]))
        centre, semi = organs[key]
        shrunk = semi - 0.8 * r
        if np.any(shrunk < 3.0):
            continue
        u = rng.standard_normal(3)
        u *= rng.uniform() ** (1.0 / 3.0) / np.linalg.norm(u)
        c = centre + u * shrunk
        s = float(body.s(c[2]))
        cav_ax, cav_by = body.cavity(np.array([s]))
        margin = 0.8 * r if organ != "abdomen" else r
        if (c[0] / (cav_ax[0] - margin)) ** 2 + (c[1] / (cav_by[0] - margin)) ** 2 > 1.0 or min(
            cav_ax[0], cav_by[0]
        ) <= margin:
            continue
        if not 0.02 < s < 0.98:
            continue
        ok = True
        for hot, gap in (("heart", 25.0), ("bladder", 25.0), ("kidney_left", 18.0), ("kidney_right", 18.0)):
            hc, hs = organs[hot]
            if _inside_ellipsoid(c, hc, hs + r + gap):
                ok = False
                break
        if organ == "lung":
            lc, ls = organs["liver"]
            ok = ok and not _inside_ellipsoid(c, lc, ls + r + 20.0)
        if organ == "abdomen":
            for organ_name in ("liver", "spleen"):
                oc, os_ = organs[organ_name]
                ok = ok and not _inside_ellipsoid(c, oc, os_ + r + 15.0)
        if math.hypot(c[0], c[1] - y_vb) < r_vb + r + 8.0:
            ok = False
        if ax_s0 <= s <= ax_s1 and math.hypot(c[0] - ax_x, c[1] - ax_y) < ax_r + r + 4.0:
            ok = False
        for other in placed:
            if np.linalg.norm(c - other.centre) < r + other.r_out + 8.0:
                ok = False
        if ok:
            lesion.centre = c
            lesion.organ = organ
            return True
    return False


def _setup_uptake(
    rng: np.random.Generator,
    lesion: ph.LesionModel,
    pet: ph.Grid,
    heterogeneity: float,
    background: float,
) -> None:
    """Plateau, rim, gradient, texture and necrosis of a placed lesion; sets its plateau SUV."""
    r_in = lesion.r_in
    necrotic = r_in >= 20.0 and rng.uniform() < 0.85
    direction = ph._unit_vector(rng)
    if necrotic:
        cp = pet.centre_of(pet.index_of(lesion.centre - 0.5 * r_in * direction))
        lesion.centre = cp + 0.5 * r_in * direction
        lesion.plateau_centre = cp
        lesion.plateau_radius = 0.2 * r_in
        lesion.taper = 0.1 * r_in
        lesion.necrosis_centre = lesion.centre + 0.35 * r_in * direction
        lesion.necrosis_radius = 0.4 * r_in
        lesion.necrosis_level = float(rng.uniform(0.1, 0.3))
    else:
        cp = pet.centre_of(pet.index_of(lesion.centre))
        lesion.centre = cp
        lesion.plateau_centre = cp
        lesion.plateau_radius = 0.5 * r_in
        lesion.taper = 0.25 * r_in
    lesion.rim_amp = float(rng.uniform(0.0, 0.2))
    lesion.grad_amp = float(rng.uniform(0.0, 0.12))
    lesion.grad_dir = ph._unit_vector(rng)
    lesion.tex_w = rng.normal(0.0, 1.0 / 9.0, size=(24, 3))
    lesion.tex_phase = rng.uniform(0, 2 * np.pi, size=24)
    lesion.texture_amp = (0.03 + 0.55 * heterogeneity) * float(rng.uniform(0.85, 1.15))
    lesion.ct_hu = _LESION_HU[lesion.organ]
    target_max = math.exp(rng.uniform(math.log(3.0), math.log(20.0)))
    # relative maximum of the pattern on the PET grid (plateau SUV 1)
    box = ph.lesion_box(lesion, pet)
    m = 1.0
    if box is not None:
        pts = ph.box_points(pet, box)
        rho = lesion.rho(pts)
        inside = rho <= 1.0
        if inside.any():
            m = float(lesion.suv(pts[inside], rho[inside], plateau_suv=1.0).max())
    # partial volume lowers the measured maximum of small lesions: their floor is higher
    floor = {"lung": 2.0, "abdomen": 2.4, "liver": 3.2 * background}[lesion.organ]
    if lesion.volume_ml < 5.0:
        floor *= 1.4
    lesion.plateau_suv = max(target_max / m, floor)


def _quantise_slices(bq: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Per-slice int16 scaling as a scanner stores PET: returns stored ints, slope strings, values."""
    stored = np.zeros(bq.shape, dtype=np.int16)
    slopes: list[str] = []
    values = np.zeros(bq.shape, dtype=np.float32)
    for k in range(bq.shape[0]):
        vmax = float(bq[k].max())
        slope_str = f"{vmax / (PET_INT16_MAX - 8):.8g}" if vmax > 0 else "1"
        slope = float(slope_str)
        q = np.clip(np.rint(bq[k] / slope), 0, PET_INT16_MAX).astype(np.int16)
        stored[k] = q
        slopes.append(slope_str)
        values[k] = (q.astype(np.float64) * slope).astype(np.float32)
    return stored, slopes, values


def make_patient(
    index: int,
    *,
    seed: int = 0,
    site: str | None = None,
    noise: bool = True,
    n_slices: int = 80,
) -> SyntheticPatient:
    """Generate one synthetic FDG PET/CT patient in memory.

    Parameters
    ----------
    index : int
        Patient index (0-based); the patient ID is ``SYN{index + 1:03d}``.
    seed : int
        Cohort seed; the patient's random stream is ``default_rng([seed, index])``.
    site : {'SITE_A', 'SITE_B', 'SITE_C'}, optional
        Force the site; by default it is drawn from the seed.
    noise : bool
        Add PET and CT noise. Without noise, each lesion's plateau shows its programmed SUV
        exactly (for lesions with ``plateau_exact``).
    n_slices : int
        Number of 3 mm CT slices (the axial coverage); the anatomy is scaled to it. At least 40.

    Returns
    -------
    SyntheticPatient

    Raises
    ------
    ConfigError
        If ``site`` is unknown, ``index``/``seed`` negative or ``n_slices`` < 40.
    """
    if site is not None and site not in SITES:
        raise ConfigError(f"site must be one of {sorted(SITES)} or None, got {site!r}")
    if index < 0 or seed < 0:
        raise ConfigError(f"index and seed must be non-negative, got index={index}, seed={seed}")
    if n_slices < 40:
        raise ConfigError(f"n_slices must be at least 40 (120 mm of coverage), got {n_slices}")
    rng = np.random.default_rng([seed, index])
    names = list(SITES)
    drawn = str(rng.choice(names, p=[SITES[n].weight for n in names]))
    prof = SITES[site or drawn]

    # --- demographics and build ---------------------------------------------------------
    sex = "M" if rng.uniform() < 0.55 else "F"
    age = int(rng.integers(38, 86))
    height = round(float(rng.normal(1.76, 0.07) if sex == "M" else rng.normal(1.63, 0.06)), 2)
    z_bottom = -float(rng.integers(400, 700))
    body = ph.make_body(rng, sex=sex, length_mm=n_slices * CT_SLICE_MM, z_bottom_mm=z_bottom)
    weight = 72.0 * (body.half_width * body.half_depth) / (168.0 * 112.0) * (height / 1.70)
    weight = round(weight * float(rng.uniform(0.93, 1.07)), 1)
    dose = round(3.5e6 * weight * float(rng.uniform(0.9, 1.1)), -4)
    study_day = dt.date(2023, 1, 2) + dt.timedelta(days=int(rng.integers(0, 700)))
    injection = dt.datetime.combine(study_day, dt.time(7, 30)) + dt.timedelta(
        seconds=int(rng.integers(0, 6 * 3600))
    )
    uptake_s = int(rng.integers(50 * 60 + 30, 75 * 60 - 30))
    series = injection + dt.timedelta(seconds=uptake_s)
    ct_time = series - dt.timedelta(seconds=int(rng.integers(120, 300)))
    decayed = dose * math.exp(-math.log(2.0) * uptake_s / F18_HALF_LIFE_S)
    birth = dt.date(study_day.year - age, int(rng.integers(1, 13)), int(rng.integers(1, 29)))
    if (study_day.month, study_day.day) < (birth.month, birth.day):
        birth = birth.replace(year=birth.year - 1)
    heterogeneity = float(rng.uniform(0.0, 1.0))
    physiology = _physiology(rng)

    ct_grid, pet_grid = _grids(prof, n_slices, z_bottom)

    # --- lesions ------------------------------------------------------------------------
    n_lesions = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2]))
    volumes = sorted(
        (math.exp(rng.uniform(math.log(1.0), math.log(200.0))) for _ in range(n_lesions)), reverse=True
    )
    models: list[ph.LesionModel] = []
    for vol in volumes:
        v = vol
        for _ in range(8):
            lesion = ph.random_lesion_shape(rng, v)
            if _place(rng, lesion, body, models):
                break
            v *= 0.7
        else:  # pragma: no cover - the abdomen always holds a small lesion
            continue
        bg = physiology[
            "liver" if lesion.organ == "liver" else "lung" if lesion.organ == "lung" else "soft_tissue"
        ]
        _setup_uptake(rng, lesion, pet_grid, heterogeneity, bg)
        models.append(lesion)
    if not models:  # pragma: no cover - needs an extremely short scan
        raise ConfigError(
            f"no lesion of patient {index} fits in a scan of {n_slices} slices; use more slices (80 by default)"
        )
    models.sort(key=lambda m: -m.volume_ml)

    # --- PET -----------------------------------------------------------------------------
    lab_pet = ph.anatomy_labels(pet_grid, body)
    table = np.array([physiology[k] for k in ph.LABELS], dtype=np.float32)
    suv = table[lab_pet]
    pet_labels = ph.paint_lesions(models, pet_grid, values=suv, mode="suv")
    sigma_vox = [prof.sigma_mm / s for s in (prof.slice_mm, prof.pixel_mm, prof.pixel_mm)]
    suv_blur = ndimage.gaussian_filter(suv, sigma_vox, mode="constant")
    suv_blur_clean = suv_blur
    noise_rng = np.random.default_rng([seed, index, 1])
    if noise:
        field_ = ph._smooth_noise(noise_rng, suv.shape, 0.7)
        suv_blur = suv_blur + prof.noise * np.sqrt(np.maximum(suv_blur, 0.0) * 2.5) * field_
        suv_blur = np.maximum(suv_blur, 0.0)
    bq = suv_blur.astype(np.float64) * decayed / (weight * 1000.0) * prof.calibration
    stored, slopes, bq_values = _quantise_slices(bq)

    # --- CT ------------------------------------------------------------------------------
    lab_ct = ph.anatomy_labels(ct_grid, body)
    hu = ph.ct_hu(lab_ct, np.random.default_rng([seed, index, 2]))
    ct_labels = ph.paint_lesions(models, ct_grid, values=hu, mode="hu")
    hu = ndimage.gaussian_filter(hu, (0.3, 0.6, 0.6), mode="nearest")
    if noise:
        ct_rng = np.random.default_rng([seed, index, 3])
        hu += float(ct_rng.uniform(8.0, 14.0)) * ct_rng.standard_normal(hu.shape, dtype=np.float32)
    hu_int = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)

    # --- truth ---------------------------------------------------------------------------
    pid = _patient_id(index)
    truths: list[LesionTruth] = []
    pet_vox_ml = float(np.prod(pet_grid.spacing)) / 1000.0
    ct_vox_ml = float(np.prod(ct_grid.spacing)) / 1000.0
    for i, m in enumerate(models):
        box = ph.lesion_box(m, pet_grid)
        suvmax = m.plateau_suv
        if box is not None:
            sel = pet_labels[box] == i + 1
            if sel.any():
                suvmax = float(suv[box][sel].max())
        # the scanner blur leaves the plateau centre at its programmed value when the lesion is
        # large enough compared with the resolution; check it on the noise-free blurred image
        kc, jc, ic = pet_grid.index_of(m.plateau_centre)
        recovery = float(suv_blur_clean[kc, jc, ic]) / m.plateau_suv
        exact = abs(recovery - 1.0) <= _PLATEAU_TOLERANCE
        p_bq = m.plateau_suv * decayed / (weight * 1000.0) * prof.calibration
        truths.append(
            LesionTruth(
                patient_id=pid,
                lesion=i + 1,
                roi_name=f"GTV_{i + 1}",
                organ=m.organ,
                shape=m.kind,
                centre_mm=(float(m.centre[0]), float(m.centre[1]), float(m.centre[2])),
                volume_ml=round(m.volume_ml, 4),
                volume_pet_ml=round(int((pet_labels == i + 1).sum()) * pet_vox_ml, 6),
                volume_ct_ml=round(int((ct_labels == i + 1).sum()) * ct_vox_ml, 6),
                suvmax_programmed=suvmax,
                suv_core=m.plateau_suv,
                suv_rim=m.plateau_suv * (1.0 + m.rim_amp),
                suv_necrosis=m.plateau_suv * m.necrosis_level if m.necrosis_centre is not None else None,
                heterogeneity=heterogeneity,
                texture_amplitude=m.texture_amp,
                plateau_centre_mm=(
                    float(m.plateau_centre[0]),
                    float(m.plateau_centre[1]),
                    float(m.plateau_centre[2]),
                ),
                plateau_radius_mm=m.plateau_radius,
                plateau_exact=bool(exact),
                plateau_recovery=recovery,
                plateau_bqml=p_bq,
                decayed_dose_bq=decayed,
                weight_kg=weight,
                calibration=prof.calibration,
                expected_suvbw_plateau=m.plateau_suv * prof.calibration,
            )
        )

    clinical = clinical_record(
        rng,
        total_mtv_ml=sum(t.volume_ml for t in truths),
        suvmax=max(t.suvmax_programmed for t in truths),
        heterogeneity=heterogeneity,
        n_lesions=len(truths),
        age=age,
    )

    ct_meta = {"modality": "CT", "units": "HU", "patient_id": pid}
    pet_meta = {"modality": "PT", "units": "BQML", "patient_id": pid}
    return SyntheticPatient(
        index=index,
        seed=seed,
        patient_id=pid,
        site=prof,
        sex=sex,
        age=age,
        birth_date=birth,
        weight_kg=weight,
        height_m=height,
        dose_bq=dose,
        injection_datetime=injection,
        series_datetime=series,
        ct_datetime=ct_time,
        decayed_dose_bq=decayed,
        heterogeneity=heterogeneity,
        ct=Image(hu_int, ct_grid.spacing, ct_grid.origin, meta=ct_meta),
        pet_bqml=Image(bq_values, pet_grid.spacing, pet_grid.origin, meta=pet_meta),
        lesion_labels=Image(pet_labels, pet_grid.spacing, pet_grid.origin, meta={"patient_id": pid}),
        ct_lesion_labels=Image(ct_labels, ct_grid.spacing, ct_grid.origin, meta={"patient_id": pid}),
        lesions=truths,
        clinical=clinical,
        pet_slopes=slopes,
        pet_stored=stored,
        body=body,
        physiology=physiology,
        noise=noise,
    )
