"""The study schema rejects what it does not know, naming the key and the allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smartimaging.exceptions import ConfigError
from smartimaging.study.config import StudyConfig, config_hash, load_study


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _minimal() -> dict[str, object]:
    return {"input": {"dicom_dir": "dicom", "clinical": "clinical.csv"}}


def test_minimal_study_resolves_paths_against_the_file(tmp_path: Path) -> None:
    cfg = load_study(_write(tmp_path, _minimal()))
    assert cfg.input.dicom_dir == (tmp_path / "dicom").resolve()
    assert cfg.input.clinical == (tmp_path / "clinical.csv").resolve()
    assert cfg.output_dir == (tmp_path / "smartimaging_output").resolve()
    assert cfg.model is not None and cfg.model.target == "label"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    data = _minimal() | {"segmentaton": {"roi": "GTV"}}
    with pytest.raises(ConfigError, match=r"unknown key 'segmentaton'"):
        load_study(_write(tmp_path, data))


def test_nested_unknown_key_is_named_with_its_path(tmp_path: Path) -> None:
    data = _minimal() | {"suv": {"type": "bw", "wieght_column": "w"}}
    with pytest.raises(ConfigError, match=r"unknown key 'suv.wieght_column'"):
        load_study(_write(tmp_path, data))


def test_wrong_value_lists_the_allowed_values(tmp_path: Path) -> None:
    data = _minimal() | {"suv": {"type": "weight"}}
    with pytest.raises(ConfigError) as info:
        load_study(_write(tmp_path, data))
    msg = str(info.value)
    assert "suv.type" in msg and "'weight'" in msg
    for allowed in ("bw", "lbm", "bsa", "ibw"):
        assert allowed in msg


def test_out_of_range_value(tmp_path: Path) -> None:
    data = _minimal() | {"segmentation": {"threshold_fraction": 1.5}}
    with pytest.raises(ConfigError, match=r"segmentation.threshold_fraction"):
        load_study(_write(tmp_path, data))


def test_model_without_clinical_table_is_refused_but_extraction_only_is_fine(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model: null"):
        load_study(_write(tmp_path, {"input": {"dicom_dir": "d"}}))
    cfg = load_study(_write(tmp_path, {"input": {"dicom_dir": "d"}, "model": None}))
    assert cfg.model is None


@pytest.mark.parametrize("text", ["[1, 2", "- a\n- b\n"])
def test_not_a_mapping_or_not_yaml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=str(path).replace("\\", "\\\\")):
        load_study(path)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_study("/nonexistent/study.yaml")


def test_config_hash_is_stable_and_sensitive() -> None:
    a = StudyConfig.model_validate(_minimal())
    b = StudyConfig.model_validate(_minimal())
    c = StudyConfig.model_validate(_minimal() | {"seed": 1})
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)


def test_feature_settings_are_checked_when_the_study_is_loaded(tmp_path: Path) -> None:
    data = _minimal() | {"features": {"discretisation": "fixed_bin_sise"}}
    with pytest.raises(ConfigError, match=r"features.discretisation"):
        load_study(_write(tmp_path, data))
    data = _minimal() | {"features": {"n_binz": 16}}
    with pytest.raises(ConfigError, match=r"n_binz"):
        load_study(_write(tmp_path, data))
