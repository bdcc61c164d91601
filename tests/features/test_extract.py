"""Tests of the extraction entry point (features/extract.py): table shape, masks, degenerate ROIs."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from smartimaging.exceptions import EmptyMaskError, FeatureError, GeometryMismatchError
from smartimaging.features import extract as ex
from smartimaging.features import glcm, gldzm, histogram, morphology, pet, statistics
from smartimaging.features.registry import FAMILIES, TIDY_COLUMNS, FeatureDef
from smartimaging.features.settings import ExtractionSettings
from smartimaging.image import Image, Mask

SP = (2.0, 2.0, 2.0)
ALL_AGGREGATIONS = ("2D_avg", "2D_smrg", "2.5D_dmrg", "2.5D_vmrg", "3D_avg", "3D_vmrg", "2D", "2.5D", "3D")


def _case(seed=0):
    rng = np.random.default_rng(seed)
    arr = rng.uniform(0.5, 8.0, size=(8, 9, 10))
    mask = np.zeros(arr.shape, bool)
    mask[2:6, 3:7, 2:8] = True
    return Image(arr, spacing=SP), Mask(mask, spacing=SP)


def _n_rows(settings: ExtractionSettings, *, with_pet: bool) -> int:
    n = 0
    for family, spec in ex.FAMILY_TABLE.items():
        if family == "PET" and not with_pet:
            continue
        n_agg = len(settings.aggregations_for(family)) or 1
        n += len(spec.features) * n_agg
    return n


def test_tidy_columns_names_keys_and_every_family():
    img, m = _case()
    table = ex.extract(img, m, case="p1", roi="gtv", modality="CT")
    assert tuple(table.columns) == (*TIDY_COLUMNS, "key") == ex.OUTPUT_COLUMNS
    assert list(table["family"].unique()) == [f for f in FAMILIES if f != "PET"]  # no PET for CT
    assert len(table) == _n_rows(ExtractionSettings(), with_pet=False)
    assert (
        (table["case"] == "p1").all() and (table["roi"] == "gtv").all() and (table["modality"] == "CT").all()
    )
    assert (table["image_type"] == "original").all()
    assert table["value"].dtype == np.float64 and np.isfinite(table["value"]).all()
    by_key = table[table["aggregation"] == ""].set_index("key")
    assert by_key.loc["stat.mean", "feature"] == "Mean intensity"
    assert by_key.loc["stat.mean", "ibsi_id"] == "Q4LE"
    assert by_key.loc["stat.mean", "value"] == pytest.approx(img.array[m.array].mean())
    assert by_key.loc["ivh.V10", "feature"] == "volume fraction at 10% intensity"
    assert by_key.loc["ivh.V90", "ibsi_id"] == by_key.loc["ivh.V10", "ibsi_id"] == "BC2M"
    # texture rows: one per feature and requested aggregation the family defines
    cm = table[table["family"] == "GLCM"]
    assert list(cm["aggregation"].unique()) == ["3D_avg", "3D_vmrg"]
    assert len(cm) == 2 * len(glcm.FEATURES)
    assert set(table.loc[table["family"] == "GLSZM", "aggregation"]) == {"3D"}
    assert not table.duplicated(["key", "aggregation"]).any()


def test_pet_family_runs_for_pt_or_when_asked():
    img, m = _case()
    table = ex.extract(img, m, modality="PT")
    pet_rows = table[table["family"] == "PET"]
    assert list(pet_rows["key"]) == [f.key for f in pet.LESION_FEATURES]
    assert list(pet_rows["feature"]) == [f.name for f in pet.LESION_FEATURES]
    assert (pet_rows["ibsi_id"] == "").all() and (pet_rows["aggregation"] == "").all()
    only_pet = ex.extract(img, m, settings=ExtractionSettings(families=["PET"]), modality="CT")
    assert set(only_pet["family"]) == {"PET"}
    mtv = only_pet.set_index("key").loc["PET.MTV", "value"]
    assert mtv == pytest.approx(m.n_voxels * 8 / 1000)


def test_families_in_settings_order_and_one_table_entry_adds_a_family(monkeypatch):
    img, m = _case()
    settings = ExtractionSettings(
        families=["GLCM", "intensity statistics"], aggregation=["3D_avg", "3D_vmrg"]
    )
    table = ex.extract(img, m, settings=settings, case="p1")
    assert list(table["family"].unique()) == ["GLCM", "intensity statistics"]
    glcm_rows = table[table["family"] == "GLCM"]
    assert list(glcm_rows["aggregation"][:2]) == ["3D_avg", "3D_vmrg"]  # feature-major order
    joint_max = FeatureDef("cm.joint.max", "Joint maximum", "GLCM", "GYBY")
    spec = ex.FamilySpec(
        (joint_max,), lambda r: {("cm.joint.max", a): 0.5 for a in r.settings.aggregations_for("GLCM")}
    )
    monkeypatch.setitem(ex.FAMILY_TABLE, "GLCM", spec)
    table = ex.extract(img, m, settings=settings, case="p1")
    glcm_rows = table[table["family"] == "GLCM"]
    assert list(glcm_rows["aggregation"]) == ["3D_avg", "3D_vmrg"] and (glcm_rows["value"] == 0.5).all()
    assert "cm_joint_max_3D_vmrg" in ex.to_wide(table).columns
    monkeypatch.setitem(ex.FAMILY_TABLE, "GLCM", ex.FamilySpec((joint_max,), lambda r: {"cm.typo": 1.0}))
    with pytest.raises(FeatureError, match=r"'cm\.typo', which it does not define"):
        ex.extract(img, m, settings=settings)
    # a new dict without GLCM: deleting and restoring the key would move GLCM to the end for the rest of the worker
    monkeypatch.setattr(ex, "FAMILY_TABLE", {k: v for k, v in ex.FAMILY_TABLE.items() if k != "GLCM"})
    with pytest.raises(FeatureError, match=r"\['GLCM'\] requested in the settings are not implemented"):
        ex.extract(img, m, settings=settings)


def test_texture_families_use_the_settings():
    img, m = _case()
    s1 = ExtractionSettings(families=["GLCM", "NGLDM"], aggregation=["3D_vmrg", "3D"], n_bins=8)
    s2 = s1.model_copy(update={"distance": 2})
    s3 = s1.model_copy(update={"ngldm_alpha": 1})
    t1, t2, t3 = (
        ex.extract(img, m, settings=s).set_index(["key", "aggregation"])["value"] for s in (s1, s2, s3)
    )
    assert t1[("cm.contrast", "3D_vmrg")] != t2[("cm.contrast", "3D_vmrg")]
    assert t1[("ngl.lde", "3D")] != t3[("ngl.lde", "3D")]
    assert t1[("cm.contrast", "3D_vmrg")] == t3[("cm.contrast", "3D_vmrg")]
    # the discretised levels are those of discretise(): fixed bin number 8 over the ROI range
    x = img.array[m.array]
    lv = np.minimum(np.floor(8 * (x - x.min()) / (x.max() - x.min())) + 1, 8)
    hist = ex.extract(img, m, settings=s1.model_copy(update={"families": ("intensity histogram",)}))
    assert hist.set_index("key").loc["ih.mean", "value"] == pytest.approx(lv.mean())
    assert hist.set_index("key").loc["ih.max", "value"] == 8.0


def test_fixed_bin_size_starts_at_the_lower_bound_or_the_range():
    img, m = _case()
    base = {"families": ["intensity histogram"], "discretisation": "fixed_bin_size", "bin_width": 0.5}
    x = img.array[m.array]
    t = ex.extract(img, m, settings=ExtractionSettings(**base, bin_lower_bound=0.0)).set_index("key")
    assert t.loc["ih.max", "value"] == np.floor(x.max() / 0.5) + 1
    t = ex.extract(img, m, settings=ExtractionSettings(**base)).set_index("key")  # ROI minimum
    assert t.loc["ih.min", "value"] == 1.0
    assert t.loc["ih.max", "value"] == np.floor((x.max() - x.min()) / 0.5) + 1
    t = ex.extract(img, m, settings=ExtractionSettings(**base, resegmentation_range=(0.25, None))).set_index(
        "key"
    )
    assert t.loc["ih.max", "value"] == np.floor((x.max() - 0.25) / 0.5) + 1


def test_resegmentation_keeps_morphological_and_intensity_masks_apart():
    img, m = _case()
    lo, hi = 2.0, 6.0
    s = ExtractionSettings(
        families=["morphology", "intensity statistics", "GLDZM", "PET"],
        resegmentation_range=(lo, hi),
        aggregation=["3D"],
    )
    t = ex.extract(img, m, settings=s, modality="PT").set_index("key")["value"]
    inside = img.array[m.array]
    kept = inside[(inside >= lo) & (inside <= hi)]
    assert 0 < kept.size < inside.size
    assert t["stat.min"] >= lo and t["stat.max"] <= hi and t["stat.mean"] == pytest.approx(kept.mean())
    assert t["morph.approx.vol"] == pytest.approx(m.n_voxels * 8.0)  # morphological mask
    assert t["morph.integ.int"] == pytest.approx(kept.mean() * t["morph.vol"])  # IBSI 99N0
    assert t["PET.MTV"] == pytest.approx(kept.size * 8.0 / 1000)  # intensity mask
    # GLDZM distances are measured to the border of the morphological mask
    imask = Mask(m.array & (img.array >= lo) & (img.array <= hi), spacing=SP)
    data = ex.RoiData(img, m, imask, s)
    levels, ng = data.levels
    direct = gldzm.compute(levels, imask.array, n_levels=ng, aggregations=["3D"], morphological_mask=m.array)
    assert t["dzm.sde"] == pytest.approx(direct["3D"]["dzm.sde"])
    with pytest.raises(EmptyMaskError, match=r"resegmentation_range \[100, 200\].*span"):
        ex.extract(img, m, settings=ExtractionSettings(resegmentation_range=(100, 200)), case="p1")


def test_ivh_settings():
    img, m = _case()
    fam = {"families": ["intensity-volume histogram"]}
    t_fbn = ex.extract(img, m, settings=ExtractionSettings(**fam)).set_index("key")["value"]
    t_fbs = ex.extract(
        img, m, settings=ExtractionSettings(**fam, ivh={"method": "fixed_bin_size", "bin_width": 0.5})
    ).set_index("key")["value"]
    rounded = img.with_array(np.round(img.array))
    t_disc = ex.extract(rounded, m, settings=ExtractionSettings(**fam, ivh={"method": "discrete"})).set_index(
        "key"
    )["value"]
    x = np.round(img.array[m.array])
    assert t_disc["ivh.I10"] in set(x) | {x.max() + 1}
    assert t_fbn["ivh.V10"] != t_fbs["ivh.V10"] or t_fbn["ivh.I10"] != t_fbs["ivh.I10"]
    # fixed bin size: intensities are bin centres starting at the ROI minimum
    centres = img.array[m.array].min() + 0.25 + 0.5 * np.arange(100)
    assert np.min(np.abs(centres - t_fbs["ivh.I90"])) < 1e-9


# --- degenerate ROIs ---------------------------------------------------------------------------


def test_one_voxel_roi_gives_finite_values_for_every_family():
    img, _ = _case()
    one = np.zeros(img.shape, bool)
    one[4, 4, 4] = True
    s = ExtractionSettings(aggregation=ALL_AGGREGATIONS)
    t = ex.extract(img, Mask(one, spacing=SP), settings=s, modality="PT")
    assert len(t) == _n_rows(s, with_pet=True)
    assert np.isfinite(t["value"]).all()
    v = t[t["aggregation"].isin(["", "3D", "3D_avg"])].set_index(["key", "aggregation"])["value"]
    assert v[("stat.var", "")] == 0.0 and v[("stat.max", "")] == v[("stat.min", "")] == img.array[4, 4, 4]
    assert v[("morph.approx.vol", "")] == 8.0 and v[("ih.mean", "")] == 1.0
    assert v[("szm.sze", "3D")] == 1.0 and v[("ngt.coarseness", "3D")] == 1e6
    assert v[("cm.joint.max", "3D_avg")] == 1.0


def test_flat_roi_gives_finite_values_for_every_family():
    flat = Image(np.full((6, 6, 6), 2.5), spacing=SP)
    inner = np.zeros((6, 6, 6), bool)
    inner[1:5, 1:5, 1:5] = True
    s = ExtractionSettings(aggregation=ALL_AGGREGATIONS)
    t = ex.extract(flat, Mask(inner, spacing=SP), settings=s, modality="PT")
    assert np.isfinite(t["value"]).all()
    v = t.set_index(["key", "aggregation"])["value"]
    assert v[("stat.skew", "")] == 0.0 and v[("stat.cov", "")] == 0.0
    assert v[("PET.SUVmax", "")] == 2.5
    assert v[("ih.entropy", "")] == 0.0 and v[("ih.mean", "")] == 1.0
    # IVH with fixed bin number: the flat ROI falls in bin 1 of 1..1000 (intensity fraction 0)
    assert (
        v[("ivh.V10", "")] == 0.0
        and v[("ivh.I10", "")] == 2.0
        and v[("ivh.auc", "")] == pytest.approx(0.5 / 999)
    )
    # IVH of discrete intensities: a single level, intensity fraction 1 (ivh module convention)
    d = ex.extract(flat, Mask(inner, spacing=SP), settings=ExtractionSettings(ivh={"method": "discrete"}))
    dv = d.set_index("key")["value"]
    assert dv["ivh.V10"] == 1.0 and dv["ivh.I10"] == 3.5 and dv["ivh.auc"] == 0.0
    assert v[("cm.corr", "3D_vmrg")] == 1.0 and v[("szm.glnu.norm", "3D")] == 1.0
    assert v[("ngt.coarseness", "2D")] == 1e6


def test_roi_touching_the_image_border():
    img, _ = _case()
    m = np.zeros(img.shape, bool)
    m[0:3, 0:4, 7:10] = True  # touches three faces of the image
    mask = Mask(m, spacing=SP)
    t = ex.extract(img, mask, settings=ExtractionSettings(aggregation=ALL_AGGREGATIONS), modality="PT")
    assert np.isfinite(t["value"]).all()
    v = t.set_index(["key", "aggregation"])["value"]
    assert v[("morph.approx.vol", "")] == pytest.approx(m.sum() * 8.0)
    # the mesh is closed at the image edge (marching cubes on the padded mask)
    assert 0.7 * m.sum() * 8.0 < v[("morph.vol", "")] < m.sum() * 8.0
    # on a flat image: spheres cut by the image edge average the voxels that exist (no zero
    # padding), and every zone touching the edge lies at distance 1 from the ROI border
    flat = img.with_array(np.full(img.shape, 2.5))
    f = ex.extract(flat, mask, settings=ExtractionSettings(aggregation=ALL_AGGREGATIONS), modality="PT")
    fv = f.set_index(["key", "aggregation"])["value"]
    assert fv[("loc.peak.local", "")] == pytest.approx(2.5) and fv[("PET.SUVpeak", "")] == pytest.approx(2.5)
    assert fv[("dzm.sde", "3D")] == 1.0 and fv[("dzm.lde", "2D")] == 1.0


def test_empty_mask_grid_mismatch_and_nan_are_clear_errors():
    img, m = _case()
    with pytest.raises(EmptyMaskError, match=r"case 'p7', roi 'node'.*contains no voxel"):
        ex.extract(img, Mask(np.zeros(img.shape, bool), spacing=SP), case="p7", roi="node")
    with pytest.raises(GeometryMismatchError, match=r"case 'p7'.*spacing.*resample_to"):
        ex.extract(img, Mask(m.array, spacing=(2.0, 2.0, 3.0)), case="p7")
    with pytest.raises(GeometryMismatchError, match="shape"):
        ex.extract(img, Mask(m.array[:-1], spacing=SP), case="p7")
    nan_img = img.with_array(np.where(m.array & (np.indices(img.shape)[0] == 3), np.nan, img.array))
    with pytest.raises(FeatureError, match=r"24 NaN or infinite value\(s\) inside the ROI \(case 'p7'"):
        ex.extract(nan_img, m, case="p7")
    # the documented explicit exclusion works; NaN outside the ROI is ignored
    clean = Mask(m.array & np.isfinite(nan_img.array), spacing=SP)
    assert np.isfinite(ex.extract(nan_img, clean)["value"]).all()


def test_family_modules_are_called_with_the_right_masks(monkeypatch):
    img, m = _case()
    seen = {}
    real = morphology.compute

    def spy(image, morph_mask, intensity_mask, **options):
        seen["morph"], seen["intensity"] = morph_mask.n_voxels, intensity_mask.n_voxels
        return real(image, morph_mask, intensity_mask, **options)

    monkeypatch.setattr(morphology, "compute", spy)
    ex.extract(img, m, settings=ExtractionSettings(families=["morphology"], resegmentation_range=(None, 5.0)))
    assert seen["morph"] == m.n_voxels > seen["intensity"] == int(np.sum(img.array[m.array] <= 5.0))
    assert len(statistics.FEATURES) == 18 and len(histogram.FEATURES) == 23


# --- wide table -------------------------------------------------------------------------------


def test_to_wide_shape_and_names():
    img, m = _case()
    s = ExtractionSettings(families=["intensity statistics", "local intensity", "GLCM", "PET"])
    t1 = ex.extract(img, m, settings=s, case="p1", roi="gtv", modality="PT")
    t2 = ex.extract(img, m, settings=s, case="p2", roi="gtv", modality="PT")
    wide = ex.to_wide(pd.concat([t1, t2], ignore_index=True))
    assert wide.shape == (2, 2 + len(t1))
    assert list(wide.columns[:4]) == ["case", "roi", "stat_mean", "stat_var"]
    assert {"PET_SUVmax", "stat_mean", "cm_joint_max_3D_avg", "cm_joint_max_3D_vmrg"} <= set(wide.columns)
    assert list(wide["case"]) == ["p1", "p2"]
    assert wide.loc[0, "PET_SUVmax"] == pytest.approx(img.array[m.array].max())
    assert ex.wide_name("cm.joint.max", "3D_avg", "log_1.5mm") == "log_1.5mm_cm_joint_max_3D_avg"
    with pytest.raises(FeatureError, match=r"missing \['key'\]"):
        ex.to_wide(t1.drop(columns=["key"]))


def test_to_wide_rejects_collisions_unless_modality_is_prefixed():
    img, m = _case()
    s = ExtractionSettings(families=["intensity statistics", "PET"])
    both = pd.concat(
        [
            ex.extract(img, m, settings=s, case="p1", modality="PT"),
            ex.extract(img, m, settings=s, case="p1", modality="CT"),
        ]
    )
    with pytest.raises(FeatureError, match="include_modality=True"):
        ex.to_wide(both)
    wide = ex.to_wide(both, include_modality=True)
    assert "PT_PET_SUVmax" in wide.columns and "CT_stat_mean" in wide.columns and len(wide) == 1


def test_exclude_features_drops_rows_and_skips_fully_excluded_families(monkeypatch):
    img, m = _case()
    full = ex.extract(img, m)
    s = ExtractionSettings(exclude_features=["Moran's I index", "NPT7", "Joint maximum"])
    table = ex.extract(img, m, settings=s)
    dropped = {"morph.moran.i", "morph.geary.c", "cm.joint.max"}
    assert set(full["key"]) - set(table["key"]) == dropped
    assert len(full) - len(table) == 2 + 2  # Joint maximum in 3D_avg and 3D_vmrg
    kept = full[~full["key"].isin(dropped)].reset_index(drop=True)
    pd.testing.assert_frame_equal(table, kept)

    called = []
    spec = ex.FAMILY_TABLE["intensity statistics"]
    monkeypatch.setitem(
        ex.FAMILY_TABLE,
        "intensity statistics",
        ex.FamilySpec(spec.features, lambda r: called.append(1) or spec.compute(r), spec.modalities),
    )
    every_stat = [f.ibsi_id for f in statistics.FEATURES]
    no_stats = ex.extract(img, m, settings=ExtractionSettings(exclude_features=every_stat))
    assert called == [] and "intensity statistics" not in set(no_stats["family"])


def test_mask_on_another_grid_is_an_error_even_with_processing_and_resample_to_fixes_it():
    from smartimaging.features.pipeline import extract_with_processing
    from smartimaging.image import resample_to
    from smartimaging.preprocess.resample import ImageProcessingSettings

    img, m = _case()
    # the same ROI drawn on a grid shifted by half a voxel (another frame of reference grid)
    shifted = Mask(m.array, spacing=SP, origin=(1.0, 0.0, 0.0))
    processing = ImageProcessingSettings(spacing=(4.0, 4.0, 4.0))
    with pytest.raises(GeometryMismatchError, match=r"origin.*resample_to"):
        ex.extract(img, shifted, case="p1")
    with pytest.raises(GeometryMismatchError, match="resample_to"):
        extract_with_processing(img, shifted, processing=processing)
    on_image_grid = resample_to(shifted, img)
    assert isinstance(on_image_grid, Mask) and on_image_grid.n_voxels > 0
    table = extract_with_processing(
        img,
        on_image_grid,
        processing=processing,
        settings=ExtractionSettings(families=["intensity statistics"]),
    )
    assert np.isfinite(table["value"]).all()


def test_cropping_to_the_roi_changes_no_value(monkeypatch):
    rng = np.random.default_rng(3)
    arr = rng.uniform(0.5, 8.0, size=(30, 32, 34))
    m = np.zeros(arr.shape, bool)
    m[12:17, 10:16, 20:27] = rng.random((5, 6, 7)) < 0.8
    img, mask = Image(arr, spacing=(2.0, 1.5, 3.0)), Mask(m, spacing=(2.0, 1.5, 3.0))
    s = ExtractionSettings(aggregation=ALL_AGGREGATIONS)
    # the crop keeps the 1 cm3 sphere around ROI voxels (SUVpeak reads voxels outside the ROI):
    # margins floor(6.2 mm / spacing) + 1 = (3, 5, 4) voxels in (z, y, x)
    c_img, c_mask, _ = ex._crop_to_roi(img, mask, mask)
    lo = np.argwhere(m).min(axis=0) - np.array([3, 5, 4])
    hi = np.argwhere(m).max(axis=0) + 1 + np.array([3, 5, 4])
    assert c_img.shape == tuple(hi - lo) and c_mask.n_voxels == mask.n_voxels
    assert np.allclose(c_img.origin, img.index_to_physical(lo[::-1]))
    cropped = ex.extract(img, mask, settings=s, modality="PT")
    monkeypatch.setattr(ex, "_crop", lambda image, morph, inten, box: (image, morph, inten))
    whole = ex.extract(img, mask, settings=s, modality="PT")
    pd.testing.assert_frame_equal(cropped, whole, check_exact=False, rtol=1e-12, atol=1e-12)


def test_second_thread_changes_nothing_and_passes_errors_on(monkeypatch):
    img, mask = _case(seed=4)
    monkeypatch.setattr(ex, "THREAD_MIN_VOXELS", 1)
    threads_seen: dict[str, str] = {}
    for family in ex.FAMILY_TABLE:
        spec = ex.FAMILY_TABLE[family]

        def spy(roi, _compute=spec.compute, _family=family):
            threads_seen[_family] = threading.current_thread().name
            return _compute(roi)

        monkeypatch.setitem(ex.FAMILY_TABLE, family, ex.FamilySpec(spec.features, spy, spec.modalities))
    main = threading.current_thread().name
    for settings in (
        ExtractionSettings(n_bins=16, exclude_features=["N365", "NPT7"]),  # no Moran/Geary
        ExtractionSettings(n_bins=16),
    ):
        threads_seen.clear()
        one = ex.extract(img, mask, settings=settings, modality="PT", threads=1)
        assert set(threads_seen.values()) == {main}
        threads_seen.clear()
        two = ex.extract(img, mask, settings=settings, modality="PT", threads=2)
        assert len(threads_seen) == len(ex.FAMILY_TABLE)
        # morphology starts the second thread; families sharing lazily computed data share a thread
        assert threads_seen["morphology"] == "smartimaging-features"
        assert threads_seen["GLSZM"] == threads_seen["GLDZM"]
        assert threads_seen["local intensity"] == threads_seen["PET"]
        pd.testing.assert_frame_equal(one, two, check_exact=True)
        assert list(two["family"].unique()) == list(ex.FAMILY_TABLE)  # order kept
    assert two["ibsi_id"].isin(["N365", "NPT7"]).sum() == 2
    # without morphology both threads take families
    threads_seen.clear()
    texture = ExtractionSettings(n_bins=16, families=["GLCM", "GLRLM", "NGTDM"])
    pd.testing.assert_frame_equal(
        ex.extract(img, mask, settings=texture, threads=2),
        ex.extract(img, mask, settings=texture, threads=1),
        check_exact=True,
    )
    assert set(threads_seen) == {"GLCM", "GLRLM", "NGTDM"}

    without = ExtractionSettings(n_bins=16, exclude_features=["N365", "NPT7"])
    for family, where in (("morphology", "side thread"), ("GLSZM", "calling or side thread")):

        def broken(roi, _where=where):
            raise FeatureError(f"failed in the {_where}")

        spec = ex.FAMILY_TABLE[family]
        monkeypatch.setitem(ex.FAMILY_TABLE, family, ex.FamilySpec(spec.features, broken, spec.modalities))
        with pytest.raises(FeatureError, match=where):
            ex.extract(img, mask, settings=without, modality="PT", threads=2)
        monkeypatch.setitem(ex.FAMILY_TABLE, family, spec)
    # an error in the data both threads share stops both
    monkeypatch.setattr(ex, "discretise", lambda *a, **k: (_ for _ in ()).throw(FeatureError("bad levels")))
    with pytest.raises(FeatureError, match="bad levels"):
        ex.extract(img, mask, settings=without, modality="PT", threads=2)
    monkeypatch.setenv("SMARTIMAGING_THREADS", "two")
    with pytest.raises(FeatureError, match="SMARTIMAGING_THREADS"):
        ex.extract(img, mask, settings=without, modality="PT")


def test_tables_of_successive_rois_are_independent():
    """The kept table layout is copied: labels and values are each ROI's, edits do not leak."""
    img, mask = _case(seed=5)
    s = ExtractionSettings(families=["intensity statistics"])
    first = ex.extract(img, mask, settings=s, case="p1", roi="GTV")
    first.loc[0, "feature"] = "edited"
    first.loc[0, "value"] = -1.0
    other = Mask(mask.array & (img.array > 3.0), spacing=SP)
    second = ex.extract(img, other, settings=s, case="p2", roi="GTV")
    again = ex.extract(img, mask, settings=s, case="p1", roi="GTV")
    assert set(second["case"]) == {"p2"} and set(again["case"]) == {"p1"}
    assert again.loc[0, "feature"] == "Mean intensity" and again.loc[0, "value"] > 0
    assert not np.allclose(second["value"], again["value"])
    third = ex.extract(img, mask, settings=s, case="p3", roi="GTV2", modality="PT")
    assert set(third["roi"]) == {"GTV2"} and set(third["modality"]) == {"PT"}


def test_excluding_moran_and_geary_skips_their_computation(monkeypatch):
    img, mask = _case(seed=6)
    calls = []
    original = morphology.spatial_autocorrelation_grid

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(morphology, "spatial_autocorrelation_grid", counted)
    full = ex.extract(img, mask, settings=ExtractionSettings(families=["morphology"])).set_index("key")
    assert len(calls) == 1 and {"morph.moran.i", "morph.geary.c"} <= set(full.index)
    one = ex.extract(
        img,
        mask,
        settings=ExtractionSettings(families=["morphology"], exclude_features=["Geary's C measure"]),
    ).set_index("key")
    assert len(calls) == 2 and "morph.geary.c" not in one.index
    assert one.loc["morph.moran.i", "value"] == full.loc["morph.moran.i", "value"]
    none = ex.extract(
        img, mask, settings=ExtractionSettings(families=["morphology"], exclude_features=["N365", "NPT7"])
    ).set_index("key")
    assert len(calls) == 2 and len(none) == len(full) - 2
    pd.testing.assert_series_equal(none["value"], full["value"].drop(["morph.moran.i", "morph.geary.c"]))


def test_mask_bounds_equal_the_projections():
    """The compiled box of the ROI (extract's crop, the texture arrays) equals NumPy's nonzero extents."""
    from smartimaging.features import texture_common
    from smartimaging.features.texture_common import bounding_box, mask_bounds

    rng = np.random.default_rng(8)
    for _ in range(200):
        m = rng.random((5, 6, 7)) < rng.choice([0.0, 0.01, 0.1, 0.5, 1.0])
        box = mask_bounds(m)
        if not m.any():
            assert box is None
            continue
        idx = np.argwhere(m)
        expected = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(idx.min(0), idx.max(0), strict=True))
        assert box == expected == bounding_box(m)
        # a non-contiguous view takes NumPy's row pass instead of the compiled one: same box
        assert mask_bounds(np.asfortranarray(m)) == box
    for shape in ((3, 4, 1), (2, 3, 9), (4, 2, 33)):  # rows shorter and longer than a vector
        m = rng.random(shape) < 0.2
        assert np.array_equal(texture_common._row_any_kernel(m), m.any(axis=2))
    flat = rng.random((6, 7)) < 0.3  # other dimensionalities keep the projections
    idx = np.argwhere(flat)
    assert bounding_box(flat) == (
        slice(idx[:, 0].min(), idx[:, 0].max() + 1),
        slice(idx[:, 1].min(), idx[:, 1].max() + 1),
    )


def test_thread_tasks_group_shared_data_and_go_dearest_first():
    img, mask = _case(seed=4)
    families = list(ex.FAMILY_TABLE)
    for settings, first in (
        (ExtractionSettings(n_bins=16), ("morphology",)),
        (ExtractionSettings(n_bins=16, exclude_features=["N365", "NPT7"]), ("morphology",)),
    ):
        data = ex.RoiData(img, mask, mask, settings)
        tasks = ex._tasks(data, families)
        assert tasks[0] == first
        assert ("GLSZM", "GLDZM") in tasks and ("local intensity", "PET") in tasks
        assert sorted(f for t in tasks for f in t) == sorted(families)  # each family once
    data = ex.RoiData(img, mask, mask, ExtractionSettings(n_bins=16, exclude_features=["N365", "NPT7"]))
    assert ex._tasks(data, ["GLDZM", "NGTDM", "GLRLM"]) == [("GLRLM",), ("NGTDM",), ("GLDZM",)]
