"""Out-of-distribution check: an unseen scanner's shifted patients are flagged (with plain reasons),
training patients are not (except the ~1 % the 99th percentile implies), and the summary round-trips."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from smartimaging.exceptions import LearningError
from smartimaging.learn.ood import OODDetector

COLUMNS = [f"f{i}" for i in range(12)]


def _cohort(n: int, seed: int, *, scanner: str = "A", gain: float = 1.0, offset: float = 0.0) -> pd.DataFrame:
    """Correlated features (3 latent factors); another scanner multiplies intensities and adds an offset."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 3))
    loadings = np.random.default_rng(99).normal(size=(3, len(COLUMNS)))
    values = 5.0 + latent @ loadings + 0.3 * rng.normal(size=(n, len(COLUMNS)))
    values[:, :6] = values[:, :6] * gain + offset  # the intensity features depend on the scanner
    table = pd.DataFrame(values, columns=COLUMNS)
    table["scanner"] = scanner
    return table


@pytest.fixture(scope="module")
def fitted() -> tuple[OODDetector, pd.DataFrame]:
    train = pd.concat([_cohort(150, 0, scanner="A"), _cohort(150, 1, scanner="B")], ignore_index=True)
    return OODDetector(batch_column="scanner").fit(train), train


def test_training_and_new_in_distribution_patients_are_rarely_flagged(fitted) -> None:
    detector, train = fitted
    flags = detector.flags(train)
    rate = np.mean([bool(f) for f in flags])
    assert 0.0 < rate <= 0.011  # the 99th percentile flags at most ~1 % of the training patients
    new = _cohort(2000, 5, scanner="A")
    new_rate = np.mean([bool(f) for f in detector.flags(new)])
    assert new_rate < 0.05
    assert (detector.distances(train) <= detector.threshold_).mean() == pytest.approx(0.99, abs=0.004)


def test_an_unseen_scanner_with_shifted_intensities_is_flagged(fitted) -> None:
    detector, _ = fitted
    shifted = _cohort(200, 7, scanner="C", gain=1.6, offset=2.0)
    flags = detector.flags(shifted)
    assert all(flags)
    assert all(any("'C' was not seen in training (seen: A, B)" in r for r in f) for f in flags)
    distance = np.mean([any("atypical of the training patients" in r for r in f) for f in flags])
    out_of_range = np.mean([any("outside the training range" in r for r in f) for f in flags])
    print(f"\nunseen scanner: {distance:.2f} atypical, {out_of_range:.2f} out of range")
    assert distance > 0.75 and out_of_range > 0.5
    # the same shift on a known scanner label is still caught by the features alone
    known_label = detector.flags(shifted.assign(scanner="A"))
    assert np.mean([bool(f) for f in known_label]) > 0.9


def test_reasons_are_plain_and_name_the_features(fitted) -> None:
    detector, train = fitted
    odd = train.iloc[[0]].copy()
    odd[COLUMNS[:4]] = 1000.0
    (reasons,) = detector.flags(odd)
    text = " ".join(reasons)
    assert "4 of 12 features lie outside the training range" in text and "f0 = 1000" in text
    assert "squared Mahalanobis distance" in text
    missing = detector.flags(train.iloc[[0]].drop(columns=["scanner"]))
    assert any("scanner not given" in r for r in missing[0])


def test_missing_values_count_as_the_mean_and_are_never_out_of_range(fitted) -> None:
    detector, train = fitted
    row = train.iloc[[0]].copy()
    row[COLUMNS] = np.nan
    assert detector.flags(row) == [[]]
    assert detector.distances(row)[0] == pytest.approx(0.0, abs=1e-9)


def test_summary_round_trips_through_json(fitted) -> None:
    detector, train = fitted
    summary = json.loads(json.dumps(detector.to_summary()))
    again = OODDetector.from_summary(summary)
    shifted = _cohort(20, 7, scanner="C", gain=1.6, offset=2.0)
    both = pd.concat([train.iloc[:50], shifted])
    assert again.flags(both) == detector.flags(both)
    np.testing.assert_allclose(again.distances(both), detector.distances(both))
    assert "f0" in summary["columns"] and summary["n_patients"] == 300 and summary["batches"] == ["A", "B"]
    assert len(summary["mean"]) == 12  # summaries only: no row of the training table
    with pytest.raises(LearningError, match="incomplete"):
        OODDetector.from_summary({"columns": ["f0"]})


def test_errors(fitted) -> None:
    _, train = fitted
    with pytest.raises(LearningError, match="batch_column 'site'"):
        OODDetector(batch_column="site").fit(train)
    with pytest.raises(LearningError, match=r"quantile = 1\.5"):
        OODDetector(quantile=1.5).fit(train)
    with pytest.raises(LearningError, match="call fit"):
        OODDetector().flags(train)
