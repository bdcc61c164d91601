"""The study file's segmentation methods: validation errors and the per-patient masks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smartimaging.exceptions import ConfigError, EmptyMaskError
from smartimaging.io.dicom import discover, read_series
from smartimaging.io.seg import read_seg
from smartimaging.io.suv import to_suv
from smartimaging.segment.metrics import dice
from smartimaging.study.config import StudyConfig, load_study
from smartimaging.study.patient import PatientTask, lesion_masks
from smartimaging.synthetic import generate_cohort


def _write(tmp_path: Path, segmentation: dict[str, object]) -> Path:
    path = tmp_path / "study.yaml"
    data = {"input": {"dicom_dir": "dicom", "clinical": "clinical.csv"}, "segmentation": segmentation}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("segmentation", "pattern"),
    [
        ({"method": {"name": "otsu"}}, r"segmentation.method"),
        ({"method": {"name": "relative", "fraction": 1.5}}, r"segmentation.method.relative.fraction"),
        ({"method": {"name": "relative", "refrence": "peak"}}, r"refrence"),
        ({"method": {"name": "gradient", "inner_fraction": 0.2, "outer_fraction": 0.3}}, r"outer_fraction"),
        ({"method": {"name": "adaptive", "shell_inner_mm": 30}}, r"shell_inner_mm"),
        ({"method": {"name": "percist"}}, r"liver_roi"),
        ({"source": ["whole_body"], "whole_body": {"exclude": ["spleen"]}}, r"exclude"),
    ],
)
def test_invalid_methods_are_named(tmp_path: Path, segmentation: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_study(_write(tmp_path, segmentation))


def test_every_method_loads(tmp_path: Path) -> None:
    for method in (
        {"name": "fixed", "threshold": 3.0},
        {"name": "relative", "fraction": 0.41, "reference": "peak"},
        {"name": "adaptive", "beta": 0.2, "background": 1.1},
        {"name": "percist", "liver_roi": "Liver"},
        {"name": "gradient", "sigma_mm": 1.5},
        {"name": "region_growing", "criterion": "confidence", "min_volume_ml": 0.5},
    ):
        cfg = load_study(_write(tmp_path, {"source": ["threshold"], "method": method}))
        assert cfg.segmentation.method is not None and cfg.segmentation.method.name == method["name"]


@pytest.fixture(scope="module")
def one_patient(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple, object]:
    out = tmp_path_factory.mktemp("syn")
    generate_cohort(out, n_patients=1, seed=0, n_slices=40, progress=False)
    found = discover(out / "dicom" / "SYN001")
    pet = next(s for s in found.series if s.modality == "PT")
    suv, _ = to_suv(read_series(pet))
    return out, tuple(found.series), suv


def _task(out: Path, series: tuple, segmentation: dict[str, object]) -> PatientTask:
    cfg = StudyConfig.model_validate(
        {
            "input": {"dicom_dir": str(out / "dicom"), "clinical": str(out / "clinical.csv")},
            "segmentation": segmentation,
        }
    )
    return PatientTask("SYN001", series, cfg)


@pytest.mark.slow
def test_threshold_source_runs_the_configured_method(one_patient: tuple[Path, tuple, object]) -> None:
    out, series, suv = one_patient
    truth = read_seg(out / "dicom" / "SYN001" / "SEG" / "SEG.dcm", reference=suv)  # type: ignore[arg-type]
    for method in ({"name": "gradient"}, {"name": "relative", "fraction": 0.4, "reference": "peak"}):
        task = _task(out, series, {"source": ["threshold"], "roi": "GTV_1", "method": method})
        source, masks = lesion_masks(task, suv)  # type: ignore[arg-type]
        assert source == "threshold" and list(masks) == ["GTV_1"]
        assert dice(masks["GTV_1"], truth["GTV_1"]) > 0.7, method
    task = _task(out, series, {"source": ["threshold"], "method": {"name": "percist", "liver_roi": "Liver"}})
    with pytest.raises(EmptyMaskError, match=r"liver reference \(segmentation.method.liver_roi\).*Liver"):
        lesion_masks(task, suv)  # type: ignore[arg-type]


@pytest.mark.slow
def test_whole_body_source(one_patient: tuple[Path, tuple, object]) -> None:
    out, series, suv = one_patient
    task = _task(out, series, {"source": ["whole_body"], "whole_body": {"threshold": 4.0}})
    source, masks = lesion_masks(task, suv)  # type: ignore[arg-type]
    assert source == "whole_body" and masks and all(name.startswith("lesion_") for name in masks)
    truth = read_seg(out / "dicom" / "SYN001" / "SEG" / "SEG.dcm", reference=suv)  # type: ignore[arg-type]
    assert max(dice(m, truth["GTV_1"]) for m in masks.values()) > 0.5
    task = _task(out, series, {"source": ["whole_body"], "whole_body": {"threshold": 1000.0}})
    with pytest.raises(EmptyMaskError, match="found no lesion at SUV 1000"):
        lesion_masks(task, suv)  # type: ignore[arg-type]
