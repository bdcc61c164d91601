"""Tests of the extraction settings (features/settings.py) and the shipped IBSI settings file."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartimaging.exceptions import ConfigError
from smartimaging.features import extract as ex
from smartimaging.features.registry import FAMILIES
from smartimaging.features.settings import ExtractionSettings, IVHSettings, load_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ibsi"


def test_settings_defaults_and_validation():
    s = ExtractionSettings()
    assert s.families is None and s.discretisation == "fixed_bin_number" and s.n_bins == 32
    assert s.ivh == IVHSettings(method="fixed_bin_number") and s.ivh.effective_n_bins == 1000
    assert len(s.settings_hash()) == 64
    assert ExtractionSettings(families=["PET"]).settings_hash() != s.settings_hash()
    with pytest.raises(ValueError, match="valid: \\['morphology'"):
        ExtractionSettings(families=["glcm"])
    with pytest.raises(ValueError, match="bin_width"):
        ExtractionSettings(discretisation="fixed_bin_size")
    with pytest.raises(ValueError, match="apply only to discretisation 'fixed_bin_size'"):
        ExtractionSettings(bin_width=2.0)
    with pytest.raises(ValueError, match="Extra inputs"):
        ExtractionSettings(nbins=3)
    with pytest.raises(ValueError, match="must be below"):
        ExtractionSettings(resegmentation_range=(400, -1000))
    with pytest.raises(ValueError, match="unknown aggregation"):
        ExtractionSettings(aggregation=["4D"])
    with pytest.raises(ValueError, match="aggregation is empty"):
        ExtractionSettings(aggregation=[])
    assert ExtractionSettings(resegmentation_range=(-1000, None)).resegmentation_range == (-1000.0, None)
    assert set(FAMILIES) == set(ex.FAMILY_TABLE)


def test_aggregations_per_family():
    s = ExtractionSettings(aggregation=["2D", "3D_vmrg", "2D_avg", "3D"])
    assert s.aggregations_for("GLCM") == ("3D_vmrg", "2D_avg")
    assert s.aggregations_for("NGTDM") == ("2D", "3D")
    assert s.aggregations_for("intensity statistics") == ()
    with pytest.raises(ValueError, match=r"none of the codes of GLSZM \(\['2D', '2.5D', '3D'\]\)"):
        ExtractionSettings(aggregation=["3D_avg"])
    # fine when the families that would lack a code are not requested
    only = ExtractionSettings(families=["GLCM", "GLRLM"], aggregation=["3D_avg"])
    assert only.aggregations_for("GLRLM") == ("3D_avg",)
    with pytest.raises(ValueError, match="none of the codes of GLCM"):
        ExtractionSettings(families=["GLCM"], aggregation=["2.5D"])


def test_ivh_settings_validation():
    assert IVHSettings(method="discrete").bin_width is None
    assert IVHSettings(method="fixed_bin_size", bin_width=0.1, bin_lower_bound=0).bin_lower_bound == 0.0
    with pytest.raises(ValueError, match=r"needs ivh\.bin_width"):
        IVHSettings(method="fixed_bin_size")
    with pytest.raises(ValueError, match=r"ivh\.n_bins applies only"):
        IVHSettings(method="discrete", n_bins=10)
    with pytest.raises(ValueError, match=r"ivh\.bin_width applies only"):
        IVHSettings(bin_width=1.0)
    with pytest.raises(ValueError, match=r"ivh\.bin_lower_bound applies only"):
        IVHSettings(method="discrete", bin_lower_bound=1.0)
    with pytest.raises(ValueError, match="'discrete', 'fixed_bin_size' or 'fixed_bin_number'"):
        IVHSettings(method="fbs")  # type: ignore[arg-type]


def test_load_settings(tmp_path):
    good = tmp_path / "ok.yaml"
    good.write_text(
        "families: [intensity statistics, PET]\ndiscretisation: fixed_bin_size\nbin_width: 0.25\n"
        "resegmentation_range: [0, null]\nivh: {method: fixed_bin_size, bin_width: 0.1}\n"
    )
    s = load_settings(good)
    assert s.families == ("intensity statistics", "PET") and s.bin_width == 0.25
    assert s.ivh.method == "fixed_bin_size" and s.ivh.bin_width == 0.1
    assert hash(s) == hash(load_settings(good))
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_settings(empty) == ExtractionSettings()
    bad = tmp_path / "bad.yaml"
    bad.write_text("n_bins: 0\ncolour: red\ndiscretisation: fixed_bins\nivh: {method: fbn}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(bad)
    msg = str(info.value)
    assert str(bad) in msg
    assert "key 'n_bins'" in msg and "key 'colour'" in msg
    assert "key 'discretisation'" in msg and "'fixed_bin_number' or 'fixed_bin_size'" in msg
    assert "key 'ivh.method'" in msg and "'discrete', 'fixed_bin_size' or 'fixed_bin_number'" in msg
    with pytest.raises(ConfigError, match="not valid YAML"):
        (tmp_path / "broken.yaml").write_text("families: [a\n")
        load_settings(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        (tmp_path / "list.yaml").write_text("- a\n")
        load_settings(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")


def test_ibsi_phantom_settings_file():
    s = load_settings(EXAMPLES / "ibsi1_digital_phantom.yaml")
    assert s.families == tuple(f for f in FAMILIES if f != "PET")
    assert (s.discretisation, s.bin_width, s.bin_lower_bound) == ("fixed_bin_size", 1.0, 1.0)
    assert set(s.aggregation) == {
        "2D_avg",
        "2D_smrg",
        "2.5D_dmrg",
        "2.5D_vmrg",
        "3D_avg",
        "3D_vmrg",
        "2D",
        "2.5D",
        "3D",
    }
    assert s.distance == 1 and s.ngldm_alpha == 0 and s.ivh.method == "discrete"
    assert s.resegmentation_range is None


def test_exclude_features_by_name_id_or_key():
    s = ExtractionSettings(exclude_features=["Moran's I index", "npt7", " cm.joint.max "])
    assert s.excluded_keys() == {"morph.moran.i", "morph.geary.c", "cm.joint.max"}
    # a shared IBSI id designates every feature carrying it (V10 and V90 share BC2M)
    assert ExtractionSettings(exclude_features=["BC2M"]).excluded_keys() == {"ivh.V10", "ivh.V90"}
    assert ExtractionSettings().excluded_keys() == frozenset()
    assert s.settings_hash() != ExtractionSettings().settings_hash()


def test_exclude_features_unknown_names_are_listed_with_hints(tmp_path):
    with pytest.raises(ValueError, match=r"'Morans I' \(did you mean \"Moran's I index\"\?\).*'XXXX'"):
        ExtractionSettings(exclude_features=["Morans I", "XXXX"])
    path = tmp_path / "s.yaml"
    path.write_text("exclude_features: [cm.joint.mx]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"exclude_features.*'cm.joint.max'"):
        load_settings(path)
