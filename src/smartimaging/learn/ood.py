"""Is a new patient like the training patients? An out-of-distribution (OOD) check with reasons.

A model is only trustworthy for patients resembling those it was trained on. A patient scanned
on an unseen scanner, reconstructed differently or segmented by another rule can have features
shifted outside the training distribution, and the model then extrapolates. The
:class:`OODDetector` learns a summary of the training features and gives, per patient, plain
reasons why the patient is atypical (an empty list means no flag):

1. **range**: more than ``max_out_of_range`` (10 %) of the features lie outside the training
   range widened by ``range_margin`` (10 %) of that range on either side;
2. **joint distribution**: the squared Mahalanobis distance of the standardised features in
   the principal-component space (components explaining ``pca_variance`` = 95 % of the
   variance) exceeds the training patients' ``quantile`` (99th percentile), so about 1 % of
   training-like patients are flagged by design;
3. **batch**: the patient's batch (scanner, site), when a ``batch_column`` is given, was not
   seen in training.

Missing feature values count as the training mean (they add nothing to the distance) and are
never out of range. The fitted detector holds only cohort summaries (means, SDs, ranges, the
principal axes, one percentile and the batch names), never a patient's row, and round-trips
through :meth:`OODDetector.to_summary` / :meth:`OODDetector.from_summary` as plain JSON.

References
----------
Lee K, Lee K, Lee H, Shin J. A simple unified framework for detecting out-of-distribution
samples and adversarial attacks. NeurIPS 2018 (Mahalanobis distance).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from smartimaging.exceptions import LearningError

__all__ = ["OODDetector"]


class OODDetector:
    """Out-of-distribution check of new patients against a training cohort's feature summary.

    Parameters
    ----------
    range_margin : float, default 0.10
        A value is out of range beyond the training minimum/maximum widened by this fraction
        of the training range.
    max_out_of_range : float, default 0.10
        A patient is flagged when more than this fraction of the features are out of range.
    pca_variance : float, default 0.95
        Fraction of the variance of the standardised features kept by the principal components.
    quantile : float, default 0.99
        Training percentile of the Mahalanobis distance above which a patient is flagged.
    batch_column : str, optional
        Column holding the batch (scanner, site); a batch not seen in training is flagged. It
        is not a feature (excluded from the range and distance checks).

    Attributes
    ----------
    columns_ : list of str
        Numeric feature columns summarised.
    mean_, sd_, min_, max_ : ndarray
        Per-feature training mean, SD (1 where the SD is 0 or undefined), minimum and maximum.
    components_ : ndarray (k, p)
        Principal axes of the standardised features.
    component_sd_ : ndarray (k,)
        SD of the training scores along each axis.
    threshold_ : float
        The ``quantile`` of the training patients' squared Mahalanobis distances.
    batches_ : list of str
        Batches seen in training (empty without ``batch_column``).
    n_patients_ : int
        Training patients.
    """

    def __init__(
        self,
        *,
        range_margin: float = 0.10,
        max_out_of_range: float = 0.10,
        pca_variance: float = 0.95,
        quantile: float = 0.99,
        batch_column: str | None = None,
    ) -> None:
        self.range_margin = range_margin
        self.max_out_of_range = max_out_of_range
        self.pca_variance = pca_variance
        self.quantile = quantile
        self.batch_column = batch_column

    def _numeric(self, X: pd.DataFrame) -> pd.DataFrame:
        table = X.drop(columns=[self.batch_column]) if self.batch_column in X.columns else X
        return table.select_dtypes(include=[np.number])

    def fit(self, X: pd.DataFrame) -> OODDetector:
        """Summarise the training patients.

        Parameters
        ----------
        X : DataFrame
            Training patients; numeric columns are the features (other columns are ignored,
            except ``batch_column``).

        Returns
        -------
        OODDetector
            ``self``.

        Raises
        ------
        LearningError
            If ``X`` is not a DataFrame, has fewer than 2 rows, an option is out of range, or
            ``batch_column`` is not a column of ``X``.
        """
        if not isinstance(X, pd.DataFrame) or len(X) < 2:
            raise LearningError("OODDetector.fit: X must be a DataFrame with at least 2 patients.")
        checks = {
            "range_margin": self.range_margin >= 0,
            "max_out_of_range": 0 <= self.max_out_of_range < 1,
            "pca_variance": 0 < self.pca_variance <= 1,
            "quantile": 0 < self.quantile < 1,
        }
        bad = [f"{k} = {getattr(self, k)!r}" for k, ok in checks.items() if not ok]
        if bad:
            raise LearningError(
                f"OODDetector: {', '.join(bad)} out of range (range_margin >= 0, 0 <= max_out_of_range < 1, "
                "0 < pca_variance <= 1, 0 < quantile < 1)."
            )
        if self.batch_column is not None and self.batch_column not in X.columns:
            raise LearningError(
                f"OODDetector.fit: batch_column {self.batch_column!r} is not a column of X; "
                f"columns: {list(X.columns)[:10]}."
            )
        numeric = self._numeric(X)
        values = numeric.to_numpy(dtype=float, na_value=np.nan)
        self.columns_ = [str(c) for c in numeric.columns]
        self.n_patients_ = len(X)
        self.batches_ = (
            sorted({str(b) for b in X[self.batch_column].dropna()}) if self.batch_column is not None else []
        )
        if not self.columns_:
            self.mean_ = self.sd_ = self.min_ = self.max_ = self.component_sd_ = np.zeros(0)
            self.components_ = np.zeros((0, 0))
            self.threshold_ = 0.0
            return self
        with np.errstate(all="ignore"):
            all_nan = np.isnan(values).all(axis=0)
            filled = np.where(all_nan, 0.0, values)
            mean = np.nanmean(filled, axis=0)
            sd = np.nanstd(filled, axis=0, ddof=1)
        sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
        z = np.nan_to_num((values - mean) / sd)
        _, s, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
        var = s**2 / max(len(z) - 1, 1)
        keep = int(np.searchsorted(np.cumsum(var) / max(var.sum(), 1e-12), self.pca_variance) + 1)
        keep = max(1, min(keep, len(z) - 1, vt.shape[0]))
        self.mean_, self.sd_ = mean, sd
        self.min_ = np.where(all_nan, np.inf, np.nanmin(np.where(all_nan[None, :], np.inf, values), axis=0))
        self.max_ = np.where(all_nan, -np.inf, np.nanmax(np.where(all_nan[None, :], -np.inf, values), axis=0))
        self.components_ = vt[:keep]
        self.component_sd_ = np.sqrt(np.maximum(var[:keep], 1e-12))
        self.threshold_ = float(np.quantile(self.distances(X), self.quantile))
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "columns_"):
            raise LearningError("OODDetector: call fit (or from_summary) first.")

    def distances(self, X: pd.DataFrame) -> np.ndarray:
        """Squared Mahalanobis distance of each row in the principal-component space."""
        self._check_fitted()
        if not self.columns_:
            return np.zeros(len(X))
        x = X.reindex(columns=self.columns_).to_numpy(dtype=float, na_value=np.nan)
        z = np.nan_to_num((x - self.mean_) / self.sd_)
        scores = (z @ self.components_.T) / self.component_sd_
        return np.asarray((scores**2).sum(axis=1), dtype=float)

    def flags(self, X: pd.DataFrame) -> list[list[str]]:
        """Plain reasons why each patient is out of distribution (empty list: in distribution).

        Parameters
        ----------
        X : DataFrame
            Patients, with the training columns (missing columns count as missing values).

        Returns
        -------
        list of list of str
            One list per row of ``X``, in order.
        """
        self._check_fitted()
        out: list[list[str]] = [[] for _ in range(len(X))]
        if self.columns_:
            x = X.reindex(columns=self.columns_).to_numpy(dtype=float, na_value=np.nan)
            margin = self.range_margin * (self.max_ - self.min_)
            with np.errstate(invalid="ignore"):
                outside = np.isfinite(x) & ((x < self.min_ - margin) | (x > self.max_ + margin))
            d2 = self.distances(X)
            p = len(self.columns_)
            for i in range(len(X)):
                n_out = int(outside[i].sum())
                if n_out / p > self.max_out_of_range:
                    examples = [
                        f"{self.columns_[j]} = {x[i, j]:.4g} (training {self.min_[j]:.4g} to {self.max_[j]:.4g})"
                        for j in np.nonzero(outside[i])[0][:3]
                    ]
                    out[i].append(
                        f"{n_out} of {p} features lie outside the training range "
                        f"(by more than {self.range_margin:.0%} of the range), e.g. {'; '.join(examples)}"
                    )
                if d2[i] > self.threshold_:
                    out[i].append(
                        "the combination of feature values is atypical of the training patients "
                        f"(squared Mahalanobis distance {d2[i]:.1f} > {self.threshold_:.1f}, the "
                        f"{self.quantile * 100:g}th percentile of the training patients)"
                    )
        if self.batch_column is not None:
            if self.batch_column in X.columns:
                seen = set(self.batches_)
                for i, b in enumerate(X[self.batch_column].to_numpy()):
                    if pd.isna(b) or str(b) not in seen:
                        out[i].append(
                            f"{self.batch_column} {b!r} was not seen in training (seen: {', '.join(self.batches_)}); "
                            "features from an unseen scanner or site may be shifted"
                        )
            else:
                for reasons in out:
                    reasons.append(
                        f"{self.batch_column} not given: cannot check that the scanner/site was seen"
                    )
        return out

    def to_summary(self) -> dict[str, Any]:
        """The fitted state as plain JSON-serialisable data (no patient rows)."""
        self._check_fitted()
        return {
            "columns": list(self.columns_),
            "mean": self.mean_.tolist(),
            "sd": self.sd_.tolist(),
            "min": self.min_.tolist(),
            "max": self.max_.tolist(),
            "components": self.components_.tolist(),
            "component_sd": self.component_sd_.tolist(),
            "mahalanobis_p99": self.threshold_,
            "n_patients": self.n_patients_,
            "settings": {
                "range_margin": self.range_margin,
                "max_out_of_range": self.max_out_of_range,
                "pca_variance": self.pca_variance,
                "quantile": self.quantile,
                "batch_column": self.batch_column,
            },
            "batches": list(self.batches_),
        }

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> OODDetector:
        """Rebuild a fitted detector from :meth:`to_summary` (or a bundle manifest's training summary).

        Raises
        ------
        LearningError
            If a key is missing.
        """
        try:
            settings = dict(summary.get("settings", {}))
            detector = cls(**settings)
            detector.columns_ = [str(c) for c in summary["columns"]]
            detector.mean_ = np.asarray(summary["mean"], dtype=float)
            detector.sd_ = np.asarray(summary["sd"], dtype=float)
            detector.min_ = np.asarray(summary["min"], dtype=float)
            detector.max_ = np.asarray(summary["max"], dtype=float)
            detector.components_ = np.asarray(summary["components"], dtype=float).reshape(
                -1, len(detector.columns_)
            )
            detector.component_sd_ = np.asarray(summary["component_sd"], dtype=float)
            detector.threshold_ = float(summary["mahalanobis_p99"])
            detector.n_patients_ = int(summary["n_patients"])
            detector.batches_ = [str(b) for b in summary.get("batches", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise LearningError(
                f"OODDetector.from_summary: the summary is incomplete or malformed ({exc})."
            ) from exc
        return detector

    def __repr__(self) -> str:
        fitted = f", {len(self.columns_)} features" if hasattr(self, "columns_") else ""
        return f"OODDetector(quantile={self.quantile}, batch_column={self.batch_column!r}{fitted})"
