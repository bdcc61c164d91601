"""In-memory synthetic patients: anatomy, lesions, activity, determinism, outcome model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO

from smartimaging.synthetic import SITES, make_patient
from smartimaging.synthetic import phantom as ph
from smartimaging.synthetic.dicom_write import _SeriesEncoder, write_ct_series
from smartimaging.synthetic.outcomes import clinical_record
from smartimaging.synthetic.patient import F18_HALF_LIFE_S

SLICES = 48


@pytest.fixture(scope="module")
def patient():
    return make_patient(1, seed=5, n_slices=SLICES)


def test_deterministic_and_seed_dependent(patient) -> None:
    again = make_patient(1, seed=5, n_slices=SLICES)
    np.testing.assert_array_equal(again.ct.array, patient.ct.array)
    np.testing.assert_array_equal(again.pet_bqml.array, patient.pet_bqml.array)
    np.testing.assert_array_equal(again.lesion_labels.array, patient.lesion_labels.array)
    assert again.lesions == patient.lesions
    other = make_patient(1, seed=6, n_slices=SLICES)
    assert other.weight_kg != patient.weight_kg or not np.array_equal(other.ct.array, patient.ct.array)


def test_header_facts(patient) -> None:
    assert 50.0 <= patient.uptake_minutes <= 75.0
    assert patient.site.name in SITES
    expected = patient.dose_bq * math.exp(-math.log(2) * patient.uptake_minutes * 60 / F18_HALF_LIFE_S)
    assert patient.decayed_dose_bq == pytest.approx(expected)
    assert 3.0e6 <= patient.dose_bq / patient.weight_kg <= 4.0e6
    assert patient.ct.spacing == pytest.approx((500 / 128, 500 / 128, 3.0))


def test_ct_tissues(patient) -> None:
    hu = patient.ct.array.astype(float)
    lab = ph.anatomy_labels(
        ph.Grid(patient.ct.shape, patient.ct.spacing, patient.ct.origin),
        _body_of(patient),
    )
    lesion = patient.ct_lesion_labels.array > 0
    for name, lo, hi in (
        ("lung", -950, -700),
        ("fat", -140, -60),
        ("soft_tissue", 20, 70),
        ("liver", 40, 80),
    ):
        sel = (lab == ph.LABELS[name]) & ~lesion
        if sel.sum() > 200:
            assert lo < np.median(hu[sel]) < hi, name
    assert np.median(hu[lab == ph.LABELS["bone"]]) > 300
    assert np.median(hu[lab == ph.LABELS["air"]]) < -950


def _body_of(patient):
    assert patient.body is not None
    return patient.body


def test_pet_physiology_and_lesions(patient) -> None:
    suv = patient.pet_bqml.array / (patient.decayed_dose_bq / (patient.weight_kg * 1000.0))
    suv = suv / patient.site.calibration
    lab = ph.anatomy_labels(
        ph.Grid(patient.pet_bqml.shape, patient.pet_bqml.spacing, patient.pet_bqml.origin), _body_of(patient)
    )
    from scipy import ndimage

    # organ interiors, far from edges, show their programmed uptake (lungs gain some spill-in
    # from the heart, chest wall and lesions through the scanner blur)
    for name, rel in (("liver", 0.1), ("lung", 0.4)):
        inner = ndimage.binary_erosion(lab == ph.LABELS[name], iterations=3) & (
            patient.lesion_labels.array == 0
        )
        assert inner.sum() > 50, name
        assert np.median(suv[inner]) == pytest.approx(patient.physiology[name], rel=rel), name
    assert suv.min() >= 0
    for t in patient.lesions:
        sel = patient.lesion_labels.array == t.lesion
        assert sel.any()
        assert suv[sel].max() > 1.5 * np.median(suv[lab == ph.LABELS["soft_tissue"]])


def test_noise_free_plateau_in_memory() -> None:
    n_exact = 0
    for index in range(3):
        p = make_patient(index, seed=11, noise=False, n_slices=SLICES)
        for t in p.lesions:
            k, j, i = np.rint(p.pet_bqml.physical_to_index(t.plateau_centre_mm)[::-1]).astype(int)
            measured = p.pet_bqml.array[k, j, i] / (p.decayed_dose_bq / (p.weight_kg * 1000.0))
            assert measured / t.expected_suvbw_plateau == pytest.approx(t.plateau_recovery, rel=1e-3)
            if t.plateau_exact:
                n_exact += 1
                assert measured == pytest.approx(t.suv_core * p.site.calibration, rel=0.005)
            assert 3.0 * 0.99 <= t.suvmax_programmed <= 20.0 * 2.5
            assert t.suv_core <= t.suvmax_programmed + 1e-9
    assert n_exact >= 2


def test_sites_differ() -> None:
    a = make_patient(0, seed=2, site="SITE_A", n_slices=SLICES)
    b = make_patient(0, seed=2, site="SITE_B", n_slices=SLICES)
    assert a.pet_bqml.spacing != b.pet_bqml.spacing
    assert a.site.manufacturer != b.site.manufacturer
    assert a.site.fwhm_mm < b.site.fwhm_mm and a.site.noise < b.site.noise
    assert a.site.calibration != b.site.calibration
    # same patient, other scanner
    assert (a.weight_kg, a.dose_bq, a.age, a.series_datetime) == (
        b.weight_kg,
        b.dose_bq,
        b.age,
        b.series_datetime,
    )
    assert [t.volume_ml for t in a.lesions] == [t.volume_ml for t in b.lesions]
    assert np.mean(a.ct.array != b.ct.array) < 0.05  # only lesion positions snap to each PET grid


@pytest.mark.slow
def test_lesion_volume_range_over_20_patients() -> None:
    volumes = [t.volume_ml for i in range(20) for t in make_patient(i, seed=0).lesions]
    assert min(volumes) < 2.5
    assert max(volumes) > 90.0
    assert all(0.3 < v <= 200.0 for v in volumes)


def test_lesion_shape_volume_on_fine_grid() -> None:
    rng = np.random.default_rng(4)
    for target in (1.5, 20.0, 150.0):
        for _ in range(3):
            lesion = ph.random_lesion_shape(rng, target)
            h = lesion.r_out / 28.0
            g = np.arange(-lesion.r_out, lesion.r_out + h / 2, h)
            pts = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
            measured = lesion.inside(pts).sum() * h**3 / 1000.0
            assert measured == pytest.approx(target, rel=0.04), lesion.kind
            # r_in/r_out bound the shape
            r = np.linalg.norm(pts, axis=1)
            assert lesion.inside(pts[r <= lesion.r_in]).all()
            assert not lesion.inside(pts[r > lesion.r_out]).any()


def test_outcome_model_direction() -> None:
    rng = np.random.default_rng(0)
    small = [clinical_record(rng, total_mtv_ml=2.0, suvmax=4.0, heterogeneity=0.1, n_lesions=1, age=50)
             for _ in range(300)]  # fmt: skip
    large = [clinical_record(rng, total_mtv_ml=150.0, suvmax=15.0, heterogeneity=0.9, n_lesions=3, age=75)
             for _ in range(300)]  # fmt: skip
    assert np.mean([r.label for r in large]) > np.mean([r.label for r in small]) + 0.4
    assert np.median([r.time_months for r in large]) < np.median([r.time_months for r in small])
    assert np.mean([r.stage for r in large]) > np.mean([r.stage for r in small])
    for r in small + large:
        assert 1 <= r.stage <= 4 and r.label in (0, 1) and r.event in (0, 1)
        assert 0.1 <= r.time_months <= 60.0


def test_fast_writer_matches_pydicom(tmp_path, patient) -> None:
    headers = write_ct_series(patient, tmp_path / "CT")
    assert len(headers) == patient.ct.shape[0]
    written = (tmp_path / "CT" / "CT_0003.dcm").read_bytes()
    import pydicom

    ds = pydicom.dcmread(tmp_path / "CT" / "CT_0003.dcm")
    buf = DicomBytesIO()
    ds.save_as(buf, enforce_file_format=True)
    assert buf.getvalue() == written
    hu = ds.pixel_array.astype(int) - 1024
    np.testing.assert_array_equal(hu, patient.ct.array[3])
    # the encoder merges elements in tag order whatever the order they were set in
    base = Dataset()
    base.PatientID = "X"
    base.Modality = "CT"
    enc = _SeriesEncoder(base)
    assert list(enc.encoded) == sorted(enc.encoded)
