"""Tests of the extraction entry point and its settings (features/extract.py, settings.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _ibsi import load_digital_phantom, matches, reference_rows

from smartimaging.exceptions import ConfigError, EmptyMaskError, FeatureError, GeometryMismatchError
from smartimaging.features import extract as ex
from smartimaging.features import local_intensity, pet, statistics
from smartimaging.features.registry import FAMILIES, TIDY_COLUMNS, FeatureDef
from smartimaging.features.settings import ExtractionSettings, load_settings
from smartimaging.image import Image, Mask

SP = (2.0, 2.0, 2.0)


def _case(seed=0):
    rng = np.random.default_rng(seed)
    arr = rng.uniform(0.5, 8.0, size=(8, 9, 10))
    mask = np.zeros(arr.shape, bool)
    mask[2:6, 3:7, 2:8] = True
    return Image(arr, spacing=SP), Mask(mask, spacing=SP)


def test_tidy_columns_and_rows():
    img, m = _case()
    table = ex.extract(img, m, case="p1", roi="gtv", modality="CT")
    assert tuple(table.columns) == TIDY_COLUMNS
    assert len(table) == len(statistics.FEATURES) + len(local_intensity.FEATURES)  # no PET for CT
    assert set(table["family"]) == {"intensity statistics", "local intensity"}
    assert (
        (table["case"] == "p1").all() and (table["roi"] == "gtv").all() and (table["modality"] == "CT").all()
    )
    assert (table["image_type"] == "original").all() and (table["aggregation"] == "").all()
    assert table["value"].dtype == np.float64
    by_key = table.set_index("feature")
    assert by_key.loc["stat.mean", "ibsi_id"] == "Q4LE"
    assert by_key.loc["stat.mean", "value"] == pytest.approx(img.array[m.array].mean())


def test_pet_family_runs_for_pt_or_when_asked():
    img, m = _case()
    table = ex.extract(img, m, modality="PT")
    pet_rows = table[table["family"] == "PET"]
    assert list(pet_rows["feature"]) == [f.key for f in pet.LESION_FEATURES]
    assert (pet_rows["ibsi_id"] == "").all()
    only_pet = ex.extract(img, m, settings=ExtractionSettings(families=["PET"]), modality="CT")
    assert set(only_pet["family"]) == {"PET"}
    mtv = only_pet.set_index("feature").loc["PET.MTV", "value"]
    assert mtv == pytest.approx(m.n_voxels * 8 / 1000)


def test_unimplemented_family_is_an_error_listing_implemented_ones():
    img, m = _case()
    with pytest.raises(FeatureError, match=r"not implemented yet; implemented: \['intensity statistics'"):
        ex.extract(img, m, settings=ExtractionSettings(families=["NGTDM"]))


def test_adding_a_family_is_one_table_entry(monkeypatch):
    img, m = _case()
    joint_max = FeatureDef("cm.joint.max", "Joint maximum", "GLCM", "GYBY")
    spec = ex.FamilySpec((joint_max,), lambda im, mk, s: {("cm.joint.max", a): 0.5 for a in s.aggregation})
    monkeypatch.setitem(ex.FAMILY_TABLE, "GLCM", spec)
    settings = ExtractionSettings(
        families=["GLCM", "intensity statistics"], aggregation=["3D_avg", "3D_vmrg"]
    )
    table = ex.extract(img, m, settings=settings, case="p1")
    glcm = table[table["family"] == "GLCM"]
    assert list(glcm["aggregation"]) == ["3D_avg", "3D_vmrg"] and (glcm["ibsi_id"] == "GYBY").all()
    assert list(table["family"].unique()) == ["GLCM", "intensity statistics"]  # settings order
    assert "cm_joint_max_3D_vmrg" in ex.to_wide(table).columns
    bad = ex.FamilySpec((joint_max,), lambda im, mk, s: {"cm.typo": 1.0})
    monkeypatch.setitem(ex.FAMILY_TABLE, "GLCM", bad)
    with pytest.raises(FeatureError, match=r"'cm\.typo', which it does not define"):
        ex.extract(img, m, settings=settings)


def test_one_voxel_and_flat_rois_give_finite_values():
    img, _ = _case()
    one = np.zeros(img.shape, bool)
    one[4, 4, 4] = True
    t1 = ex.extract(img, Mask(one, spacing=SP), modality="PT")
    assert np.isfinite(t1["value"]).all()
    v = t1.set_index("feature")["value"]
    assert v["stat.var"] == 0.0 and v["stat.max"] == v["stat.min"] == img.array[4, 4, 4]
    flat = Image(np.full((6, 6, 6), 2.5), spacing=SP)
    t2 = ex.extract(flat, Mask(np.ones((6, 6, 6), bool), spacing=SP), modality="PT")
    v2 = t2.set_index("feature")["value"]
    assert np.isfinite(t2["value"]).all()
    assert v2["stat.skew"] == 0.0 and v2["stat.cov"] == 0.0 and v2["PET.SUVpeak"] == pytest.approx(2.5)


def test_errors_name_the_case_and_roi():
    img, m = _case()
    with pytest.raises(EmptyMaskError, match="case 'p7', roi 'node'"):
        ex.extract(img, Mask(np.zeros(img.shape, bool), spacing=SP), case="p7", roi="node")
    with pytest.raises(GeometryMismatchError, match="case 'p7'"):
        ex.extract(img, Mask(m.array, spacing=(2.0, 2.0, 3.0)), case="p7")
    nan_img = img.with_array(np.where(m.array & (np.indices(img.shape)[0] == 3), np.nan, img.array))
    with pytest.raises(FeatureError, match=r"24 NaN or infinite value\(s\) inside the ROI \(case 'p7'"):
        ex.extract(nan_img, m, case="p7")
    # documented explicit exclusion works
    clean = Mask(m.array & np.isfinite(nan_img.array), spacing=SP)
    assert np.isfinite(ex.extract(nan_img, clean)["value"]).all()


def test_to_wide_shape_and_names():
    img, m = _case()
    t1 = ex.extract(img, m, case="p1", roi="gtv", modality="PT")
    t2 = ex.extract(img, m, case="p2", roi="gtv", modality="PT")
    wide = ex.to_wide(pd.concat([t1, t2], ignore_index=True))
    assert wide.shape == (2, 2 + len(t1))
    assert list(wide.columns[:4]) == ["case", "roi", "stat_mean", "stat_var"]
    assert "PET_SUVmax" in wide.columns and "loc_peak_local" in wide.columns
    assert list(wide["case"]) == ["p1", "p2"]
    assert wide.loc[0, "PET_SUVmax"] == pytest.approx(img.array[m.array].max())
    assert ex.wide_name("cm.joint.max", "3D_avg", "log_1.5mm") == "log_1.5mm_cm_joint_max_3D_avg"


def test_to_wide_rejects_collisions_unless_modality_is_prefixed():
    img, m = _case()
    both = pd.concat(
        [ex.extract(img, m, case="p1", modality="PT"), ex.extract(img, m, case="p1", modality="CT")]
    )
    with pytest.raises(FeatureError, match="include_modality=True"):
        ex.to_wide(both)
    wide = ex.to_wide(both, include_modality=True)
    assert "PT_PET_SUVmax" in wide.columns and "CT_stat_mean" in wide.columns and len(wide) == 1


@pytest.mark.shared
def test_extract_on_digital_phantom_matches_reference(shared_dir):
    image, mask = load_digital_phantom(shared_dir)
    table = ex.extract(image, mask, case="phantom")
    ref = pd.concat([reference_rows(shared_dir, f) for f in ("intensity statistics", "local intensity")])
    merged = table.merge(ref, left_on="feature", right_on="key", suffixes=("", "_ref"))
    assert len(merged) == 20
    assert (merged["ibsi_id"] == merged["ibsi_id_ref"]).all()
    bad = [r.key for r in merged.itertuples() if not matches(r.value, r.value_ref, r.tolerance)]
    assert bad == []


# --- settings --------------------------------------------------------------------------------


def test_settings_defaults_and_validation():
    s = ExtractionSettings()
    assert s.families is None and s.discretisation == "fixed_bin_number" and s.n_bins == 32
    assert len(s.settings_hash()) == 64
    assert ExtractionSettings(families=["PET"]).settings_hash() != s.settings_hash()
    with pytest.raises(ValueError, match="valid: \\['morphology'"):
        ExtractionSettings(families=["glcm"])
    with pytest.raises(ValueError, match="bin_width"):
        ExtractionSettings(discretisation="fixed_bin_size")
    with pytest.raises(ValueError, match="Extra inputs"):
        ExtractionSettings(nbins=3)
    with pytest.raises(ValueError, match="must be below"):
        ExtractionSettings(resegmentation_range=(400, -1000))
    with pytest.raises(ValueError, match="unknown aggregation"):
        ExtractionSettings(aggregation=["4D"])
    assert ExtractionSettings(resegmentation_range=(-1000, None)).resegmentation_range == (-1000.0, None)
    assert set(FAMILIES) >= set(ex.FAMILY_TABLE)


def test_load_settings(tmp_path):
    good = tmp_path / "ok.yaml"
    good.write_text(
        "families: [intensity statistics, PET]\ndiscretisation: fixed_bin_size\nbin_width: 0.25\n"
        "resegmentation_range: [0, null]\n"
    )
    s = load_settings(good)
    assert s.families == ("intensity statistics", "PET") and s.bin_width == 0.25
    assert hash(s) == hash(load_settings(good))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_settings(empty) == ExtractionSettings()
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_bins: 0\ncolour: red\n")
    with pytest.raises(ConfigError, match=r"key 'n_bins'.*key 'colour'") as info:
        load_settings(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(ConfigError, match="not valid YAML"):
        (tmp_path / "broken.yaml").write_text("families: [a\n")
        load_settings(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        (tmp_path / "list.yaml").write_text("- a\n")
        load_settings(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")
