"""Numeric preprocessing of feature tables: imputation, log / Yeo-Johnson transforms, z-scores.

:func:`make_numeric_branch` composes the steps used for numeric columns by
:func:`smartimaging.learn.models.make_preprocessor`; every step is a scikit-learn transformer,
fitted on the training folds only. :class:`SignedLog1p` is a log transform defined for features
with negative values.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PowerTransformer, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from smartimaging.exceptions import LearningError

__all__ = ["ImputeStrategy", "NumericTransform", "SignedLog1p", "make_numeric_branch"]

ImputeStrategy = Literal["median", "mean", "knn"]
NumericTransform = Literal["none", "log", "yeo-johnson"]


class SignedLog1p(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """``sign(x) * log(1 + |x|)``: a log transform that keeps the sign (features may be negative).

    Stateless (nothing is learned); monotone, odd, identity near 0, logarithmic for large |x|.
    Missing values stay missing.
    """

    def fit(self, X: Any, y: Any = None) -> SignedLog1p:
        """Record the input width and names.

        Parameters
        ----------
        X : array_like of shape (n, p)
        y : ignored

        Returns
        -------
        SignedLog1p
        """
        validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=True)
        return self

    def transform(self, X: Any) -> NDArray[np.float64]:
        """Apply ``sign(x) * log1p(|x|)``.

        Parameters
        ----------
        X : array_like of shape (n, p)

        Returns
        -------
        ndarray of shape (n, p)
        """
        check_is_fitted(self, "n_features_in_")
        x = np.asarray(validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False))
        return np.sign(x) * np.log1p(np.abs(x))

    def inverse_transform(self, X: Any) -> NDArray[np.float64]:
        """Undo the transform: ``sign(z) * expm1(|z|)``."""
        z = np.asarray(X, dtype=float)
        return np.sign(z) * np.expm1(np.abs(z))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.requires_fit = False
        return tags


def make_numeric_branch(
    *,
    impute: ImputeStrategy = "median",
    transform: NumericTransform = "none",
    scale: bool = True,
    n_neighbors: int = 5,
) -> Pipeline:
    """Imputation -> optional log / Yeo-Johnson -> optional z-score, for numeric columns.

    Parameters
    ----------
    impute : {'median', 'mean', 'knn'}, default 'median'
        :class:`~sklearn.impute.SimpleImputer` (median/mean) or
        :class:`~sklearn.impute.KNNImputer` (mean of the ``n_neighbors`` nearest training
        patients, distances on the observed features). Columns missing in every training row are
        kept (filled with 0) so the width does not depend on the fold.
    transform : {'none', 'log', 'yeo-johnson'}, default 'none'
        ``'log'``: :class:`SignedLog1p`; ``'yeo-johnson'``: :class:`~sklearn.preprocessing.PowerTransformer`
        with the per-feature lambda fitted by maximum likelihood (no standardisation inside;
        see ``scale``).
    scale : bool, default True
        Z-score with the training mean and standard deviation (:class:`~sklearn.preprocessing.StandardScaler`).
    n_neighbors : int, default 5
        Neighbours of the kNN imputer.

    Returns
    -------
    Pipeline
        Steps ``impute`` [, ``transform``] [, ``scale``].

    Raises
    ------
    LearningError
        If an option is not one of its valid values.

    References
    ----------
    Yeo IK, Johnson RA. A new family of power transformations to improve normality or symmetry.
    Biometrika 2000;87:954-959. Troyanskaya O et al. Missing value estimation methods for DNA
    microarrays. Bioinformatics 2001;17:520-525 (kNN imputation).
    """
    if impute not in get_args(ImputeStrategy):
        raise LearningError(
            f"make_numeric_branch: unknown impute={impute!r}; valid values are {list(get_args(ImputeStrategy))}."
        )
    if transform not in get_args(NumericTransform):
        raise LearningError(
            f"make_numeric_branch: unknown transform={transform!r}; valid values are {list(get_args(NumericTransform))}."
        )
    steps: list[tuple[str, Any]] = []
    if impute == "knn":
        steps.append(("impute", KNNImputer(n_neighbors=n_neighbors, keep_empty_features=True)))
    else:
        steps.append(("impute", SimpleImputer(strategy=impute, keep_empty_features=True)))
    if transform == "log":
        steps.append(("transform", SignedLog1p()))
    elif transform == "yeo-johnson":
        steps.append(("transform", PowerTransformer(method="yeo-johnson", standardize=False)))
    if scale:
        steps.append(("scale", StandardScaler()))
    return Pipeline(steps)
