"""Synthetic torso anatomy and FDG-avid lesions defined in physical space.

Everything here is a function of physical coordinates (mm, DICOM patient coordinates LPS:
``x`` grows towards the patient's left, ``y`` towards the back, ``z`` towards the head), so the
same anatomy and the same lesions can be sampled on any voxel grid: the CT grid, the PET grid
of a site, or a fine grid used to measure volumes.

The anatomy is a stylised neck-to-pelvis torso compressed into the axial coverage of the scan:
body outline with subcutaneous fat, lungs, heart (blood pool and myocardium), descending aorta,
liver, spleen, kidneys, bladder, spine, ribs, sternum and iliac bones. Organ positions are given
in fractions of the torso size so that they vary with each patient's build.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

__all__ = [
    "HU",
    "LABELS",
    "BodyModel",
    "Grid",
    "LesionModel",
    "anatomy_labels",
    "ct_hu",
    "make_body",
    "paint_lesions",
]

# tissue labels of the anatomy map
AIR, FAT, SOFT, LUNG, LIVER, SPLEEN, KIDNEY, RENAL_PELVIS, BLADDER = 0, 1, 2, 3, 4, 5, 6, 7, 8
BLOOD, MYOCARDIUM, BONE, MARROW, CANAL, DISC, TABLE = 9, 10, 11, 12, 13, 14, 15

LABELS: dict[str, int] = {
    "air": AIR, "fat": FAT, "soft_tissue": SOFT, "lung": LUNG, "liver": LIVER, "spleen": SPLEEN,
    "kidney": KIDNEY, "renal_pelvis": RENAL_PELVIS, "bladder": BLADDER, "blood": BLOOD,
    "myocardium": MYOCARDIUM, "bone": BONE, "marrow": MARROW, "spinal_canal": CANAL, "disc": DISC,
    "table": TABLE,
}  # fmt: skip

# mean CT numbers (HU) of each label
HU = np.array([-1000, -100, 45, -850, 60, 50, 35, 10, 8, 42, 45, 750, 230, 25, 85, -350], dtype=np.float32)


@dataclass(frozen=True)
class Grid:
    """A voxel grid: shape ``(z, y, x)``, spacing and origin ``(x, y, z)`` in mm, identity direction."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voxel-centre coordinates along x, y and z (1D, mm)."""
        nz, ny, nx = self.shape
        return (
            self.origin[0] + self.spacing[0] * np.arange(nx),
            self.origin[1] + self.spacing[1] * np.arange(ny),
            self.origin[2] + self.spacing[2] * np.arange(nz),
        )

    def index_of(self, point: np.ndarray) -> tuple[int, int, int]:
        """Index ``(z, y, x)`` of the voxel whose centre is nearest to ``point`` (x, y, z mm)."""
        ijk = np.rint((np.asarray(point) - np.asarray(self.origin)) / np.asarray(self.spacing)).astype(int)
        return (int(ijk[2]), int(ijk[1]), int(ijk[0]))

    def centre_of(self, index_zyx: tuple[int, int, int]) -> np.ndarray:
        """Physical centre (x, y, z mm) of voxel ``(z, y, x)``."""
        k, j, i = index_zyx
        return np.asarray(self.origin) + np.asarray(self.spacing) * np.array([i, j, k], dtype=float)


@dataclass(frozen=True)
class BodyModel:
    """A patient's build: torso size, fat, axial placement and organ variations (all mm)."""

    half_width: float
    half_depth: float
    fat: float
    z_bottom: float
    length: float
    bladder_fill: float
    heart_shift: float
    fat_field: tuple[np.ndarray, np.ndarray] = field(repr=False)

    def s(self, z: np.ndarray | float) -> np.ndarray:
        """Fractional axial position: 0 at the bottom of the scan (pelvis), 1 at the top (lung apex)."""
        return (np.asarray(z, dtype=float) - self.z_bottom) / self.length

    def z(self, s: float) -> float:
        """Axial coordinate (mm) of fractional position ``s``."""
        return self.z_bottom + s * self.length

    def outline(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Semi-axes (mm) of the body outline at fractional positions ``s``."""
        waist = np.exp(-(((s - 0.38) / 0.12) ** 2))
        top = np.clip((s - 0.92) / 0.08, 0.0, 1.0)
        ax = self.half_width * (1.0 - 0.07 * waist + 0.03 * (s - 0.5)) * (1.0 - 0.12 * top)
        by = self.half_depth * (1.0 - 0.05 * waist) * (1.0 - 0.05 * top)
        return ax, by

    def cavity(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Semi-axes (mm) of the body cavity inside fat and a ~12 mm muscle/rib wall."""
        ax, by = self.outline(s)
        return ax - self.fat - 12.0, by - 0.8 * self.fat - 12.0

    # --- organ ellipsoids: name -> (centre xyz mm, semi-axes mm) --------------------------
    def organs(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Centres and semi-axes (mm) of the ellipsoidal organs."""
        a, b, h = self.half_width, self.half_depth, self.length
        fill = self.bladder_fill
        return {
            "lung_right": (np.array([-0.42 * a, -0.02 * b, self.z(0.80)]), np.array([0.30 * a, 0.62 * b, 0.24 * h])),
            "lung_left": (np.array([0.45 * a, -0.02 * b, self.z(0.80)]), np.array([0.28 * a, 0.62 * b, 0.24 * h])),
            "heart": (
                np.array([0.10 * a + self.heart_shift, -0.22 * b, self.z(0.68)]),
                np.array([0.30 * a, 0.40 * b, 0.16 * h]),
            ),
            "liver": (np.array([-0.35 * a, -0.02 * b, self.z(0.52)]), np.array([0.45 * a, 0.62 * b, 0.17 * h])),
            "spleen": (np.array([0.55 * a, 0.30 * b, self.z(0.52)]), np.array([0.18 * a, 0.28 * b, 0.10 * h])),
            "kidney_right": (np.array([-0.38 * a, 0.42 * b, self.z(0.38)]), np.array([0.15 * a, 0.22 * b, 0.12 * h])),
            "kidney_left": (np.array([0.38 * a, 0.42 * b, self.z(0.38)]), np.array([0.15 * a, 0.22 * b, 0.12 * h])),
            "bladder": (
                np.array([0.0, -0.35 * b, self.z(0.12)]),
                np.array([0.22 * a * fill, 0.28 * b * fill, 0.08 * h * fill]),
            ),
            # soft-tissue region of the mid abdomen (retroperitoneal / mesenteric nodes)
            "abdomen": (np.array([0.0, -0.10 * b, self.z(0.28)]), np.array([0.40 * a, 0.35 * b, 0.12 * h])),
        }  # fmt: skip

    @property
    def spine(self) -> tuple[float, float]:
        """Vertebral body centre ``y`` (mm) and radius (mm); the spine lies at ``x = 0``."""
        return 0.48 * self.half_depth, 0.12 * self.half_depth + 5.0

    @property
    def aorta(self) -> tuple[float, float, float, float, float]:
        """Descending aorta: centre x, y (mm), radius (mm) and axial extent (s from, s to)."""
        y_vb, r_vb = self.spine
        return 20.0, y_vb - r_vb - 14.0, 11.0, 0.25, 0.80


def make_body(rng: np.random.Generator, *, sex: str, length_mm: float, z_bottom_mm: float) -> BodyModel:
    """Draw a patient's build."""
    male = sex == "M"
    half_width = float(rng.uniform(158, 190) if male else rng.uniform(145, 178))
    half_depth = float(rng.uniform(100, 128) if male else rng.uniform(92, 120))
    # a random smooth field (random Fourier features) for intra-abdominal fat
    w = rng.normal(0.0, 1.0 / 18.0, size=(6, 3))
    phase = rng.uniform(0, 2 * np.pi, size=6)
    return BodyModel(
        half_width=half_width,
        half_depth=half_depth,
        fat=float(rng.uniform(8, 30)),
        z_bottom=z_bottom_mm,
        length=length_mm,
        bladder_fill=float(rng.uniform(0.7, 1.15)),
        heart_shift=float(rng.uniform(-10, 10)),
        fat_field=(w, phase),
    )


def _ellipsoid_mask(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, centre: np.ndarray, semi: np.ndarray
) -> tuple[slice, np.ndarray] | None:
    """Boolean mask of an ellipsoid over the slices it reaches, or None when it misses the grid."""
    zsel = np.nonzero(np.abs(z - centre[2]) < semi[2])[0]
    if zsel.size == 0:
        return None
    sl = slice(int(zsel[0]), int(zsel[-1]) + 1)
    dz = ((z[sl] - centre[2]) / semi[2])[:, None, None] ** 2
    dy = ((y - centre[1]) / semi[1])[None, :, None] ** 2
    dx = ((x - centre[0]) / semi[0])[None, None, :] ** 2
    return sl, (dx + dy + dz) <= 1.0


def anatomy_labels(grid: Grid, body: BodyModel) -> np.ndarray:
    """Tissue label map (``uint8``, ``(z, y, x)``) of ``body`` sampled at the voxel centres of ``grid``.

    Parameters
    ----------
    grid : Grid
        Grid to sample on.
    body : BodyModel
        The patient's build.

    Returns
    -------
    numpy.ndarray
        Labels as in :data:`LABELS`.
    """
    x, y, z = grid.axes()
    s = body.s(z)
    lab = np.zeros(grid.shape, dtype=np.uint8)
    ax, by = body.outline(s)
    X = x[None, None, :]
    Y = y[None, :, None]
    r_body = (X / ax[:, None, None]) ** 2 + (Y / by[:, None, None]) ** 2
    lab[r_body <= 1.0] = FAT
    inner_ax, inner_by = ax - body.fat, by - 0.8 * body.fat
    r_inner = (X / inner_ax[:, None, None]) ** 2 + (Y / inner_by[:, None, None]) ** 2
    lab[r_inner <= 1.0] = SOFT
    cav_ax, cav_by = body.cavity(s)
    r_cav = (X / cav_ax[:, None, None]) ** 2 + (Y / cav_by[:, None, None]) ** 2
    in_cavity = r_cav <= 1.0

    # intra-abdominal fat: threshold of a smooth random field below the diaphragm
    w, phase = body.fat_field
    abd = np.nonzero(s < 0.5)[0]
    if abd.size:
        sl = slice(int(abd[0]), int(abd[-1]) + 1)
        ex = np.exp(1j * np.outer(w[:, 0], x))
        ey = np.exp(1j * np.outer(w[:, 1], y))
        ez = np.exp(1j * (np.outer(w[:, 2], z[sl]) + phase[:, None]))
        field_ = np.zeros((sl.stop - sl.start, y.size, x.size))
        for k in range(w.shape[0]):
            field_ += np.real(ez[k][:, None, None] * ey[k][None, :, None] * ex[k][None, None, :])
        field_ *= np.sqrt(2.0 / w.shape[0])
        sub = lab[sl]
        sub[(field_ > 0.5) & in_cavity[sl]] = FAT

    organs = body.organs()

    def paint(name: str, value: int, *, clip_cavity: bool = True, scale: float = 1.0) -> None:
        centre, semi = organs[name]
        res = _ellipsoid_mask(x, y, z, centre, semi * scale)
        if res is None:
            return
        sl, m = res
        if clip_cavity:
            m = m & in_cavity[sl]
        lab[sl][m] = value

    paint("lung_right", LUNG)
    paint("lung_left", LUNG)
    paint("liver", LIVER)
    paint("spleen", SPLEEN)
    for side in ("kidney_right", "kidney_left"):
        paint(side, KIDNEY)
        centre, semi = organs[side]
        shift = np.array([-np.sign(centre[0]) * 0.3 * semi[0], 0.0, 0.0])
        res = _ellipsoid_mask(x, y, z, centre + shift, semi * 0.4)
        if res is not None:
            lab[res[0]][res[1]] = RENAL_PELVIS
    paint("bladder", BLADDER, clip_cavity=False)
    paint("heart", MYOCARDIUM)
    centre, semi = organs["heart"]
    res = _ellipsoid_mask(x, y, z, centre, semi - 10.0)
    if res is not None:
        lab[res[0]][res[1]] = BLOOD

    # descending aorta
    axo, ayo, rao, s0, s1 = body.aorta
    zsel = (s >= s0) & (s <= s1)
    disk = ((X - axo) ** 2 + (Y - ayo) ** 2) <= rao**2
    lab[zsel[:, None, None] & disk] = BLOOD

    # spine: vertebral bodies (cortex, marrow, discs), canal and spinous process
    y_vb, r_vb = body.spine
    d_vb = np.sqrt(X**2 + (Y - y_vb) ** 2)
    disc = ((z - body.z_bottom) % 28.0) < 5.0
    lab[np.broadcast_to(d_vb <= r_vb, lab.shape)] = BONE
    marrow = np.broadcast_to(d_vb <= r_vb - 2.5, lab.shape)
    lab[marrow & ~disc[:, None, None]] = MARROW
    lab[marrow & disc[:, None, None]] = DISC
    y_canal = y_vb + r_vb + 9.0
    canal = ((X**2 + (Y - y_canal) ** 2) <= 7.5**2) & np.ones((1, 1, 1), bool)
    ring = (((X**2 + (Y - y_canal) ** 2) <= 11.0**2) & ~canal) & (Y > y_vb + r_vb - 2.0)
    process = (np.abs(X) <= 5.0) & (Y > y_canal + 7.0) & (Y <= y_canal + 7.0 + 0.2 * body.half_depth)
    lab[np.broadcast_to(ring | process, lab.shape)] = BONE
    lab[np.broadcast_to(canal, lab.shape)] = CANAL

    # ribs: tilted bands in the chest wall; sternum in front
    rib_z = (s >= 0.50) & (s <= 0.98)
    if rib_z.any():
        r_out = (X / (cav_ax[:, None, None] + 9.0)) ** 2 + (Y / (cav_by[:, None, None] + 9.0)) ** 2
        r_in = (X / (cav_ax[:, None, None] + 1.0)) ** 2 + (Y / (cav_by[:, None, None] + 1.0)) ** 2
        band = (r_out <= 1.0) & (r_in > 1.0)
        phase_ = ((z - body.z_bottom)[:, None, None] + 0.15 * (Y + body.half_depth)) % 25.0
        front = (Y < -0.5 * body.half_depth) & (np.abs(X) < 0.3 * body.half_width)
        ribs = band & (phase_ < 9.0) & ~front & rib_z[:, None, None]
        lab[ribs] = BONE
        st_z = (s >= 0.60) & (s <= 0.95)
        y_front = -cav_by[:, None, None] - 10.0
        sternum = (np.abs(X) <= 15.0) & (Y >= y_front) & (Y <= y_front + 10.0) & st_z[:, None, None]
        lab[sternum] = BONE

    # iliac wings in the pelvis
    pel_z = s <= 0.22
    if pel_z.any():
        for sign in (-1.0, 1.0):
            cx, cy = sign * 0.55 * body.half_width, 0.15 * body.half_depth
            ex_, ey_ = 0.12 * body.half_width, 0.35 * body.half_depth
            rr = ((X - cx) / ex_) ** 2 + ((Y - cy) / ey_) ** 2
            lab[(rr <= 1.0) & pel_z[:, None, None]] = BONE
            rr2 = ((X - cx) / (ex_ - 3.0)) ** 2 + ((Y - cy) / (ey_ - 3.0)) ** 2
            lab[(rr2 <= 1.0) & pel_z[:, None, None]] = MARROW

    # patient couch behind the patient (CT only, no activity)
    y_table = float(np.max(by)) + 8.0
    table = (Y >= y_table) & (Y <= y_table + 14.0) & (np.abs(X) <= 220.0)
    lab[np.broadcast_to(table, lab.shape)] = TABLE
    return lab


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian noise smoothed with ``sigma`` voxels, rescaled to unit standard deviation."""
    n = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="wrap")
    sd = float(n.std())
    return n / sd if sd > 0 else n


def ct_hu(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """CT numbers (HU, float32) from a label map: tissue means and lung/fat/marrow texture.

    Parameters
    ----------
    labels : numpy.ndarray
        Tissue labels (``uint8``); lesion HU are set afterwards by :func:`paint_lesions`.
    rng : numpy.random.Generator
        Random source of the texture.
    """
    hu = HU[np.minimum(labels, HU.size - 1)].astype(np.float32)
    tex = _smooth_noise(rng, labels.shape, 1.2)
    hu += np.where(labels == LUNG, 35.0, 0.0).astype(np.float32) * tex
    hu += np.where((labels == FAT) | (labels == MARROW), 12.0, 0.0).astype(np.float32) * tex
    # lung vessels: bright tubular-ish blobs where the smooth texture peaks
    hu[(labels == LUNG) & (tex > 2.3)] = -300.0
    return hu


# --- lesions ---------------------------------------------------------------------------


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _unit_vector(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


@dataclass
class LesionModel:
    """One lesion: a shape (a level function ``rho``, inside where ``rho <= 1``) and an uptake pattern.

    Lengths are in mm and positions in patient coordinates. ``rho`` is 0 at ``centre``.
    The uptake (SUV before the scanner's blur) equals ``plateau_suv`` exactly within
    ``plateau_radius`` of ``plateau_centre``; outside, a rim, a linear gradient, a texture whose
    amplitude is ``texture_amp`` and, for large lesions, an eccentric necrotic component modulate it.
    """

    kind: str
    centre: np.ndarray
    rotation: np.ndarray
    semi: np.ndarray
    lobes: list[tuple[np.ndarray, float]]
    radial_w: np.ndarray
    radial_phase: np.ndarray
    radial_amp: float
    # filled in by scaling / placement
    scale: float = 1.0
    r_in: float = 0.0
    r_out: float = 0.0
    volume_ml: float = 0.0
    organ: str = ""
    # uptake
    plateau_suv: float = 1.0
    plateau_centre: np.ndarray = field(default_factory=lambda: np.zeros(3))
    plateau_radius: float = 0.0
    taper: float = 1.0
    rim_amp: float = 0.0
    rim_frac: float = 0.25
    grad_dir: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))
    grad_amp: float = 0.0
    tex_w: np.ndarray = field(default_factory=lambda: np.zeros((1, 3)))
    tex_phase: np.ndarray = field(default_factory=lambda: np.zeros(1))
    texture_amp: float = 0.0
    necrosis_centre: np.ndarray | None = None
    necrosis_radius: float = 0.0
    necrosis_level: float = 1.0
    ct_hu: float = 38.0

    # --- shape ------------------------------------------------------------------------
    def rho(self, pts: np.ndarray) -> np.ndarray:
        """Level function at points ``(N, 3)``: inside the lesion where ``<= 1``."""
        d = (pts - self.centre) / self.scale
        if self.kind == "lobulated":
            out = np.full(d.shape[0], np.inf)
            for offset, radius in self.lobes:
                out = np.minimum(out, np.linalg.norm(d - offset, axis=1) / radius)
            return out
        q = (d @ self.rotation) / self.semi
        r = np.linalg.norm(q, axis=1)
        if self.kind == "ellipsoid":
            return r
        u = q / np.maximum(r, 1e-12)[:, None]
        f = np.cos(u @ self.radial_w.T + self.radial_phase).sum(axis=1) / self.radial_w.shape[0]
        return r / (1.0 + self.radial_amp * f)

    def inside(self, pts: np.ndarray) -> np.ndarray:
        """Whether points ``(N, 3)`` lie inside the lesion."""
        return self.rho(pts) <= 1.0

    # --- uptake -----------------------------------------------------------------------
    def texture(self, pts: np.ndarray) -> np.ndarray:
        """Unit-variance smooth random field (random Fourier features) at points ``(N, 3)``."""
        k = self.tex_w.shape[0]
        return np.sqrt(2.0 / k) * np.cos(pts @ self.tex_w.T + self.tex_phase).sum(axis=1)

    def necrosis_weight(self, pts: np.ndarray) -> np.ndarray:
        """1 inside the necrotic component, 0 outside it, smooth over 3 mm."""
        if self.necrosis_centre is None:
            return np.zeros(pts.shape[0])
        d = np.linalg.norm(pts - self.necrosis_centre, axis=1)
        return 1.0 - _smoothstep((d - self.necrosis_radius) / 3.0)

    def suv(
        self, pts: np.ndarray, rho: np.ndarray | None = None, *, plateau_suv: float | None = None
    ) -> np.ndarray:
        """Programmed uptake (SUV, before blur) at points ``(N, 3)`` inside the lesion."""
        p_suv = self.plateau_suv if plateau_suv is None else plateau_suv
        if rho is None:
            rho = self.rho(pts)
        dp = np.linalg.norm(pts - self.plateau_centre, axis=1)
        w = _smoothstep((dp - self.plateau_radius) / self.taper)
        rim = self.rim_amp * _smoothstep((rho - (1.0 - self.rim_frac)) / self.rim_frac)
        grad = self.grad_amp * ((pts - self.centre) @ self.grad_dir) / max(self.r_out, 1e-6)
        mod = 1.0 + w * (rim + grad + self.texture_amp * self.texture(pts))
        nec = self.necrosis_weight(pts)
        mod = mod * (1.0 - (1.0 - self.necrosis_level) * nec)
        return p_suv * np.maximum(mod, 0.05)


def random_lesion_shape(rng: np.random.Generator, volume_ml: float) -> LesionModel:
    """A lesion shape of the given volume, centred at the origin (placement comes later).

    Shapes: ``'ellipsoid'`` (random axes and orientation), ``'lobulated'`` (union of a main sphere
    and 2-4 satellite spheres) and ``'irregular'`` (an ellipsoid whose radius is modulated by a
    smooth random function of direction). The volume is reached by scaling a unit-size shape
    whose volume is measured on a fine grid, and ``r_in`` (largest sphere around the centre
    inside the lesion) and ``r_out`` (smallest sphere around the centre containing it) are
    measured on the same grid.
    """
    kind = str(rng.choice(["ellipsoid", "lobulated", "irregular"], p=[0.35, 0.3, 0.35]))
    semi = np.array([1.0, rng.uniform(0.75, 1.25), rng.uniform(0.65, 1.15)])
    lobes: list[tuple[np.ndarray, float]] = [(np.zeros(3), 1.0)]
    if kind == "lobulated":
        for _ in range(int(rng.integers(2, 5))):
            radius = float(rng.uniform(0.45, 0.75))
            lobes.append((_unit_vector(rng) * rng.uniform(0.55, 0.85), radius))
    radial_w = rng.normal(0.0, 2.2, size=(8, 3))
    lesion = LesionModel(
        kind=kind,
        centre=np.zeros(3),
        rotation=_random_rotation(rng),
        semi=semi,
        lobes=lobes,
        radial_w=radial_w,
        radial_phase=rng.uniform(0, 2 * np.pi, size=8),
        radial_amp=float(rng.uniform(0.2, 0.35)) if kind == "irregular" else 0.0,
    )
    # measure the unit shape on a fine grid
    n = 55
    g = np.linspace(-1.8, 1.8, n)
    h = g[1] - g[0]
    pts = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = lesion.inside(pts)
    unit_vol = inside.sum() * h**3
    r = np.linalg.norm(pts, axis=1)
    r_in_unit = float(r[~inside].min()) - h / 2
    r_out_unit = float(r[inside].max()) + h
    scale = (volume_ml * 1000.0 / unit_vol) ** (1.0 / 3.0)
    lesion.scale = float(scale)
    lesion.r_in = r_in_unit * scale
    lesion.r_out = r_out_unit * scale
    lesion.volume_ml = float(volume_ml)
    return lesion


def lesion_box(lesion: LesionModel, grid: Grid) -> tuple[slice, slice, slice] | None:
    """Index slices ``(z, y, x)`` of ``grid`` covering the lesion's bounding sphere (None if outside)."""
    lo = np.floor((lesion.centre - lesion.r_out - np.asarray(grid.origin)) / np.asarray(grid.spacing)).astype(
        int
    )
    hi = np.ceil((lesion.centre + lesion.r_out - np.asarray(grid.origin)) / np.asarray(grid.spacing)).astype(
        int
    )
    nz, ny, nx = grid.shape
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi + 1, [nx, ny, nz])
    if np.any(hi <= lo):
        return None
    return slice(int(lo[2]), int(hi[2])), slice(int(lo[1]), int(hi[1])), slice(int(lo[0]), int(hi[0]))


def box_points(grid: Grid, box: tuple[slice, slice, slice]) -> np.ndarray:
    """Voxel-centre coordinates ``(N, 3)`` (x, y, z) of a box, in C order of ``(z, y, x)``."""
    x, y, z = grid.axes()
    zz, yy, xx = np.meshgrid(z[box[0]], y[box[1]], x[box[2]], indexing="ij")
    return np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1)


def paint_lesions(
    lesions: list[LesionModel], grid: Grid, *, values: np.ndarray | None = None, mode: str = "label"
) -> np.ndarray:
    """Rasterise lesions on ``grid``: a voxel belongs to a lesion when its centre lies inside.

    Parameters
    ----------
    lesions : list of LesionModel
        Lesions; lesion ``i`` gets label ``i + 1``.
    grid : Grid
        Grid to sample on.
    values : numpy.ndarray, optional
        With ``mode='suv'`` or ``mode='hu'``, the image to paint into (modified in place).
    mode : {'label', 'suv', 'hu'}
        ``'label'`` returns a ``uint8`` label map; ``'suv'`` writes the programmed uptake and
        ``'hu'`` the lesion CT numbers into ``values`` (and also returns the label map).

    Returns
    -------
    numpy.ndarray
        Label map ``(z, y, x)``, 0 outside the lesions.
    """
    if mode not in ("label", "suv", "hu"):
        raise ValueError(f"mode must be one of ['hu', 'label', 'suv'], got {mode!r}")
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for i, lesion in enumerate(lesions):
        box = lesion_box(lesion, grid)
        if box is None:
            continue
        pts = box_points(grid, box)
        rho = lesion.rho(pts)
        inside = rho <= 1.0
        shape = tuple(s.stop - s.start for s in box)
        sub = labels[box]
        sub[inside.reshape(shape)] = i + 1
        if mode == "suv" and values is not None:
            v = values[box]
            v[inside.reshape(shape)] = lesion.suv(pts[inside], rho[inside]).astype(values.dtype)
        elif mode == "hu" and values is not None:
            nec = lesion.necrosis_weight(pts[inside])
            v = values[box]
            v[inside.reshape(shape)] = (lesion.ct_hu - 25.0 * nec).astype(values.dtype)
    return labels
