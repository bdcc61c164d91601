"""The reporting checklist is filled from what the run did, not from defaults."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from smartimaging.study.checklist import run_checklist
from smartimaging.study.config import StudyConfig
from smartimaging.study.runner import RunSummary


def _summary(n_failed: int = 1) -> RunSummary:
    failures = pd.DataFrame({"patient_id": ["P9"], "stage": ["read"], "reason": ["x"]})
    return RunSummary(Path("."), 10, 10 - n_failed, n_failed, 0, 1.0, failures)


def test_extraction_only_run_says_no_model(tmp_path: Path) -> None:
    config = StudyConfig.model_validate(
        {
            "input": {"dicom_dir": str(tmp_path)},
            "model": None,
            "features": {"discretisation": "fixed_bin_size", "bin_width": 0.25},
        }
    )
    items = {
        item: (status, detail)
        for item, status, detail in run_checklist(
            config, _summary(), wide=pd.DataFrame(), patient_info={"P1": {"mask_source": "seg"}}, qc=None
        )
    }
    assert items["Prediction model developed and validated"][0] == "n/a"
    acquisition = next(v for k, v in items.items() if k.startswith("Image acquisition"))
    assert acquisition[0] == "no" and "NIfTI" in acquisition[1]
    processing = next(v for k, v in items.items() if k.startswith("Image processing"))
    assert "fixed bin size 0.25" in processing[1]
    failures = next(v for k, v in items.items() if k.startswith("Patients excluded"))
    assert failures[1].startswith("1 of 10")
    assert all(status in ("yes", "no", "n/a") for status, _ in items.values())
