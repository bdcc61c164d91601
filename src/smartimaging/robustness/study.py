"""The robustness study: features under several segmentations and perturbations, and their ICCs.

For every patient (an image and a given contour), features are extracted under a list of
*conditions*:

* the reference: the given contour, unperturbed (condition ``contour``);
* one condition per segmentation method (group ``segmentation``; see
  :mod:`smartimaging.robustness.segmentations`);
* one condition per perturbation of the given contour (grouped by the perturbation's
  ``kind``; see :mod:`smartimaging.robustness.perturb`).

Each group of conditions, together with the reference, forms a reliability design (patients
x conditions) for which ICC(2,1) and ICC(3,1) with 95 % confidence intervals are computed for
every feature (:func:`icc_table`); group ``all`` holds every condition. :func:`stable_features`
then keeps the features whose ICC (lower confidence bound, or point estimate) reaches a
threshold (0.75: "good" reliability, Koo & Li 2016).

Images and masks are cropped to the contour's bounding box enlarged by ``crop_margin_mm``
before anything else (the features only see the ROI and, for the local intensity peak, a
6.2 mm sphere around it), which makes the perturbations cheap. Noise is drawn from
``numpy.random.default_rng([seed, crc32(case), condition index])``: the same seed gives the
same study whatever the number of worker processes.

References
----------
Zwanenburg A. et al., "Assessing robustness of radiomic features by image perturbation",
Sci Rep 2019;9:614.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from rich.progress import Progress

from smartimaging.atomic import atomic_path
from smartimaging.exceptions import SmartImagingError
from smartimaging.features.batch import Case, read_case
from smartimaging.features.extract import to_wide
from smartimaging.features.pipeline import extract_with_processing
from smartimaging.features.settings import ExtractionSettings
from smartimaging.image import Image, Mask
from smartimaging.preprocess.resample import ImageProcessingSettings
from smartimaging.robustness.icc import intraclass_correlation
from smartimaging.robustness.perturb import Perturbation, crop_to_roi
from smartimaging.robustness.segmentations import SegmentationMethod, method_name, parse_method

__all__ = [
    "ICC_COLUMNS",
    "ICC_TYPES",
    "STABLE_COLUMNS",
    "CaseSource",
    "Condition",
    "RobustnessResult",
    "build_conditions",
    "cases_from_folders",
    "icc_table",
    "robustness_study",
    "stable_features",
    "write_results",
]

log = logging.getLogger(__name__)

#: Name of the reference condition (the given contour, unperturbed).
REFERENCE = "contour"
#: ICC types reported, with the column prefix of each.
ICC_TYPES: dict[str, str] = {"ICC(2,1)": "icc2", "ICC(3,1)": "icc3"}
#: Columns of :func:`icc_table`.
ICC_COLUMNS: tuple[str, ...] = (
    "group",
    "feature",
    "n_cases",
    "n_conditions",
    "icc2",
    "icc2_low",
    "icc2_high",
    "icc3",
    "icc3_low",
    "icc3_high",
    "note",
)
#: Columns of :func:`stable_features`.
STABLE_COLUMNS: tuple[str, ...] = ("feature", "group", "icc_type", "icc", "ci_low", "ci_high", "stable")

Method = Callable[[Image, Mask], Mask]


@runtime_checkable
class CaseSource(Protocol):
    """A patient that loads itself (e.g. from a study's DICOM series); picklable for workers.

    ``case`` is the patient's identifier; ``load()`` returns the image (SUV for PET), the given
    contour on its grid and the DICOM Modality, and raises a
    :class:`~smartimaging.exceptions.SmartImagingError` subclass when the patient cannot be read.
    """

    @property
    def case(self) -> str:
        """Identifier of the patient."""
        ...

    def load(self) -> tuple[Image, Mask, str]:
        """The image, the contour and the modality."""
        ...


@dataclass(frozen=True)
class Condition:
    """One way of obtaining the ROI (and image) of every patient.

    Parameters
    ----------
    name : str
        Unique label (the ``condition`` column of the feature table).
    group : str
        ``'reference'``, ``'segmentation'`` or the perturbation kind.
    method : callable
        Segmentation ``method(image, contour) -> Mask``.
    perturbation : Perturbation or None
        Applied after the segmentation.
    """

    name: str
    group: str
    method: Method
    perturbation: Perturbation | None = None

    def describe(self) -> str:
        """One line describing the condition."""
        if self.perturbation is None:
            return f"segmentation {method_name(self.method)}"
        p = self.perturbation
        parts = [
            f"rotate {p.rotate_deg:g} deg" if p.rotate_deg else "",
            f"translate {tuple(p.translate_voxels)} voxels" if any(p.translate_voxels) else "",
            f"adapt {p.adapt_mm:+g} mm" if p.adapt_mm else "",
            f"adapt {p.adapt_fraction:+.0%} volume" if p.adapt_fraction else "",
            f"noise sd {p.noise_sd}" if p.noise_sd is not None else "",
        ]
        return ", ".join(x for x in parts if x) or "no change"


def build_conditions(
    segmentations: Sequence[str | SegmentationMethod | Method] = (),
    perturbations: Sequence[Perturbation] = (),
) -> list[Condition]:
    """The reference condition, then one per segmentation method, then one per perturbation.

    Raises
    ------
    ValueError
        If two conditions share a name, or a method text is invalid.
    """
    contour = SegmentationMethod("contour")
    conditions = [Condition(REFERENCE, "reference", contour)]
    for spec in segmentations:
        method = parse_method(spec)
        name = method_name(method)
        if name == REFERENCE:
            continue  # the reference is always there
        conditions.append(Condition(name, "segmentation", method))
    conditions += [Condition(p.name, p.kind, contour, p) for p in perturbations]
    names = [c.name for c in conditions]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"condition names must be unique; repeated: {dup}")
    return conditions


@dataclass
class RobustnessResult:
    """Outputs of :func:`robustness_study`.

    Attributes
    ----------
    features : pandas.DataFrame
        Columns ``case``, ``condition``, ``group`` then one column per feature (named as in
        :func:`smartimaging.features.extract.to_wide`).
    conditions : pandas.DataFrame
        ``condition``, ``group``, ``description``.
    icc : pandas.DataFrame
        :func:`icc_table` of the features.
    failures : pandas.DataFrame
        ``case``, ``condition``, ``reason`` of every extraction that failed (``condition`` is
        empty when the case could not be read at all).
    """

    features: pd.DataFrame
    conditions: pd.DataFrame
    icc: pd.DataFrame
    failures: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            {c: pd.Series(dtype=object) for c in ("case", "condition", "reason")}
        )
    )


_VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def _case_name(path: Path) -> str:
    name = path.name
    for suffix in (*_VOLUME_SUFFIXES, ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _entries(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise SmartImagingError(f"{what} folder not found: {folder}")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        name = _case_name(p)
        if name in found:
            raise SmartImagingError(
                f"{folder} holds two {what} entries for case {name!r}: {found[name].name}, {p.name}"
            )
        found[name] = p
    return found


def cases_from_folders(
    images: str | Path, masks: str | Path, *, modality: str = "PT", roi: str = ""
) -> list[Case]:
    """Pair image and mask entries of two folders by name (without extension).

    An image entry is a volume file (NIfTI, NRRD, MetaImage) or a folder holding one DICOM
    series; a mask entry is a label volume, an RTSTRUCT or a SEG file (see
    :mod:`smartimaging.features.batch`).

    Parameters
    ----------
    images, masks : str or Path
        The two folders.
    modality : str
        DICOM Modality of the images (``'PT'`` adds the PET metrics); a DICOM series' own
        modality is used when empty.
    roi : str
        ROI name or pattern for RTSTRUCT / SEG masks.

    Returns
    -------
    list of Case
        Sorted by case name.

    Raises
    ------
    SmartImagingError
        A folder is missing or empty, or a case is found in only one folder.
    """
    imgs, msks = _entries(Path(images), "image"), _entries(Path(masks), "mask")
    only_i, only_m = sorted(set(imgs) - set(msks)), sorted(set(msks) - set(imgs))
    if only_i or only_m:
        raise SmartImagingError(
            f"images and masks are paired by name without extension; only in {images}: {only_i[:10]}, "
            f"only in {masks}: {only_m[:10]}"
        )
    if not imgs:
        raise SmartImagingError(f"no image found in {images}")
    return [Case(name, imgs[name], msks[name], roi=roi, modality=modality) for name in sorted(imgs)]


def _noise_rng(seed: int, case: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(case.encode("utf-8")), index])


def _run_patient(
    case: Case | CaseSource,
    conditions: Sequence[Condition],
    settings: ExtractionSettings | None,
    processing: ImageProcessingSettings | None,
    seed: int,
    crop_margin_mm: float,
) -> tuple[pd.DataFrame | None, list[tuple[str, str, str]]]:
    """Worker: the wide features of one patient under every condition, and its failures."""
    failures: list[tuple[str, str, str]] = []
    try:
        if isinstance(case, Case):
            image, contour, _roi, modality = read_case(case.image, case.mask, roi=case.roi, label=case.label)
            modality = case.modality or modality
        else:
            image, contour, modality = case.load()
        image, contour = crop_to_roi(image, contour, margin_mm=crop_margin_mm)
    except SmartImagingError as exc:
        return None, [(case.case, "", str(exc))]
    except Exception as exc:  # one patient must not stop the study
        log.exception("unexpected error reading case %s", case.case)
        return None, [(case.case, "", f"unexpected {type(exc).__name__}: {exc}")]
    tables = []
    for index, cond in enumerate(conditions):
        try:
            img, mask = image, cond.method(image, contour)
            if cond.perturbation is not None:
                img, mask = cond.perturbation.apply(img, mask, rng=_noise_rng(seed, case.case, index))
            tables.append(
                extract_with_processing(
                    img,
                    mask,
                    processing=processing,
                    settings=settings,
                    case=case.case,
                    roi=cond.name,
                    modality=modality,
                )
            )
        except SmartImagingError as exc:
            failures.append((case.case, cond.name, str(exc)))
        except Exception as exc:
            log.exception("unexpected error for case %s, condition %s", case.case, cond.name)
            failures.append((case.case, cond.name, f"unexpected {type(exc).__name__}: {exc}"))
    if not tables:
        return None, failures
    wide = to_wide(pd.concat(tables, ignore_index=True)).rename(columns={"roi": "condition"})
    return wide, failures


def _complete_icc(values: np.ndarray, confidence: float) -> dict[str, np.ndarray]:
    r = intraclass_correlation(values, confidence=confidence)
    return {
        "icc2": r.icc2,
        "icc2_low": r.icc2_low,
        "icc2_high": r.icc2_high,
        "icc3": r.icc3,
        "icc3_low": r.icc3_low,
        "icc3_high": r.icc3_high,
    }


def icc_table(
    features: pd.DataFrame,
    *,
    groups: Mapping[str, Sequence[str]],
    reference: str = REFERENCE,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """ICC(2,1) and ICC(3,1) of every feature, for each group of conditions.

    Parameters
    ----------
    features : pandas.DataFrame
        Columns ``case``, ``condition`` and one numeric column per feature (other non-numeric
        columns, e.g. ``group``, are ignored).
    groups : mapping of str to sequence of str
        Group name -> its conditions; the ``reference`` condition is added to each group.
    reference : str
        The reference condition.
    confidence : float
        Level of the confidence intervals.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ICC_COLUMNS`, one row per group and feature. The patients are those
        with every condition of the group; a feature with a missing value for some patients
        is computed on the others (``note`` says how many were left out, as pingouin's
        listwise deletion). ICCs are NaN, with the reason in ``note``, when fewer than 2
        patients remain or the feature does not vary at all.
    """
    feature_cols = [
        c
        for c in features.columns
        if c not in ("case", "condition") and pd.api.types.is_numeric_dtype(features[c])
    ]
    indexed = features.set_index(["case", "condition"])[feature_cols]
    rows: list[pd.DataFrame] = []
    for group, members in groups.items():
        conds = list(dict.fromkeys([reference, *members]))
        present = features[features["condition"].isin(conds)]
        counts = present.groupby("case", sort=False)["condition"].nunique()
        cases = [c for c in counts.index if counts[c] == len(conds)]
        out = pd.DataFrame(
            {"group": group, "feature": feature_cols, "n_cases": len(cases), "n_conditions": len(conds)}
        )
        for col in ICC_COLUMNS[4:-1]:
            out[col] = np.nan
        out["note"] = ""
        if len(conds) < 2 or len(cases) < 2:
            out["note"] = (
                f"needs 2 patients with all {len(conds)} conditions and 2 conditions; {len(cases)} patient(s)"
            )
            rows.append(out)
            continue
        idx = pd.MultiIndex.from_product([cases, conds], names=["case", "condition"])
        cube = (
            indexed.reindex(idx).to_numpy(dtype=np.float64).reshape(len(cases), len(conds), len(feature_cols))
        )
        finite = np.isfinite(cube).all(axis=1)  # (cases, features)
        full = finite.all(axis=0)
        if full.any():
            res = _complete_icc(cube[:, :, full], confidence)
            for col, vals in res.items():
                out.loc[full, col] = vals
        for j in np.flatnonzero(~full):
            keep = finite[:, j]
            n_keep = int(keep.sum())
            if n_keep < 2:
                out.loc[j, "note"] = f"non-finite for {len(cases) - n_keep} of {len(cases)} patients"
                continue
            res = _complete_icc(cube[keep, :, j], confidence)
            for col, vals in res.items():
                out.loc[j, col] = float(vals[0])
            out.loc[j, "note"] = f"{len(cases) - n_keep} patient(s) with non-finite values left out"
            out.loc[j, "n_cases"] = n_keep
        undefined = out["icc3"].isna() & (out["note"] == "")
        out.loc[undefined, "note"] = "constant: the feature does not vary"
        rows.append(out)
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=list(ICC_COLUMNS))
    return table[list(ICC_COLUMNS)]


def stable_features(
    icc: pd.DataFrame,
    *,
    group: str = "all",
    icc_type: Literal["ICC(2,1)", "ICC(3,1)"] = "ICC(2,1)",
    threshold: float = 0.75,
    criterion: Literal["lower", "point"] = "lower",
) -> pd.DataFrame:
    """The stability-filtered feature list of one group.

    Parameters
    ----------
    icc : pandas.DataFrame
        Output of :func:`icc_table`.
    group : str
        Group whose ICCs decide (``'all'``: every condition).
    icc_type : {'ICC(2,1)', 'ICC(3,1)'}
        Absolute agreement or consistency.
    threshold : float
        Least ICC of a stable feature (0.75 = good reliability).
    criterion : {'lower', 'point'}
        Compare the lower confidence bound (stricter) or the point estimate.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`STABLE_COLUMNS`, one row per feature in the order of ``icc``;
        ``stable`` is False where the ICC is undefined.

    Raises
    ------
    ValueError
        If ``group``, ``icc_type`` or ``criterion`` is not valid (the message lists the valid values).
    """
    if icc_type not in ICC_TYPES:
        raise ValueError(f"icc_type must be one of {list(ICC_TYPES)}, got {icc_type!r}")
    if criterion not in ("lower", "point"):
        raise ValueError(f"criterion must be one of ['lower', 'point'], got {criterion!r}")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    groups = list(dict.fromkeys(icc["group"]))
    if group not in groups:
        raise ValueError(f"group {group!r} is not in the ICC table; groups: {groups}")
    sel = icc[icc["group"] == group]
    p = ICC_TYPES[icc_type]
    value = sel[f"{p}_low"] if criterion == "lower" else sel[p]
    return pd.DataFrame(
        {
            "feature": sel["feature"].to_numpy(),
            "group": group,
            "icc_type": icc_type,
            "icc": sel[p].to_numpy(),
            "ci_low": sel[f"{p}_low"].to_numpy(),
            "ci_high": sel[f"{p}_high"].to_numpy(),
            "stable": (value >= threshold).fillna(False).to_numpy(dtype=bool),
        }
    )[list(STABLE_COLUMNS)]


def robustness_study(
    cases: Sequence[Case | CaseSource],
    *,
    segmentations: Sequence[str | SegmentationMethod | Method] = (
        "relative:0.4",
        "relative:0.5",
        "fixed:2.5",
    ),
    perturbations: Sequence[Perturbation] = (),
    settings: ExtractionSettings | None = None,
    processing: ImageProcessingSettings | None = None,
    seed: int = 0,
    crop_margin_mm: float = 30.0,
    confidence: float = 0.95,
    n_jobs: int = 1,
    progress: bool = False,
) -> RobustnessResult:
    """Extract features under every condition for every patient, and their ICCs.

    Parameters
    ----------
    cases : sequence of Case or CaseSource
        Patients: image (SUV for PET) and the given contour, as objects or files (see
        :class:`smartimaging.features.batch.Case`; ``modality='PT'`` adds the PET metrics), or
        objects that load themselves (:class:`CaseSource`).
    segmentations : sequence
        Segmentation methods (text forms of :func:`~smartimaging.robustness.segmentations.parse_method`
        or callables ``method(image, contour) -> Mask`` with a ``name``; picklable when
        ``n_jobs > 1``). The given contour is always the reference.
    perturbations : sequence of Perturbation
        Perturbed conditions (e.g. :func:`~smartimaging.robustness.perturb.perturbation_set`).
    settings : ExtractionSettings, optional
        Feature extraction settings.
    processing : ImageProcessingSettings, optional
        IBSI image processing before extraction (interpolation, re-segmentation).
    seed : int
        Seed of the noise.
    crop_margin_mm : float
        Margin of the crop around the contour.
    confidence : float
        Level of the ICC confidence intervals.
    n_jobs : int
        Worker processes (patients run in parallel).
    progress : bool
        Show a progress bar.

    Returns
    -------
    RobustnessResult
        Features, conditions, the ICC table (groups ``segmentation``, each perturbation
        kind, and ``all``) and failures. A patient or condition that fails is reported in
        ``failures``; the ICCs of a group use the patients complete for that group.

    Raises
    ------
    ValueError
        If ``n_jobs`` is not a positive integer, there are no cases, or a method is invalid.
    SmartImagingError
        If no patient could be extracted at all (the message gives the first reasons).
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    todo = list(cases)
    if not todo:
        raise ValueError("the robustness study needs at least one case (two for an ICC)")
    conditions = build_conditions(segmentations, perturbations)
    args = (conditions, settings, processing, seed, crop_margin_mm)
    results: list[tuple[pd.DataFrame | None, list[tuple[str, str, str]]]] = [(None, [])] * len(todo)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("patients", total=len(todo))
        if n_jobs == 1 or len(todo) == 1:
            for i, case in enumerate(todo):
                results[i] = _run_patient(case, *args)
                bar.advance(task)
        else:
            with ProcessPoolExecutor(max_workers=min(n_jobs, len(todo))) as pool:
                futures = {pool.submit(_run_patient, case, *args): i for i, case in enumerate(todo)}
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.advance(task)
    tables = [t for t, _ in results if t is not None]
    failures = pd.DataFrame(
        [f for _, fs in results for f in fs], columns=["case", "condition", "reason"], dtype=object
    )
    if not tables:
        first = "; ".join(f"{c}: {r}" for c, _, r in failures.head(3).itertuples(index=False))
        raise SmartImagingError(f"no patient could be extracted under any condition; first reasons: {first}")
    features = pd.concat(tables, ignore_index=True)
    group_of = {c.name: c.group for c in conditions}
    features.insert(2, "group", features["condition"].map(group_of))
    groups: dict[str, list[str]] = {}
    for c in conditions[1:]:
        groups.setdefault(c.group, []).append(c.name)
    groups["all"] = [c.name for c in conditions[1:]]
    icc = icc_table(features, groups=groups, confidence=confidence)
    cond_table = pd.DataFrame(
        {
            "condition": [c.name for c in conditions],
            "group": [c.group for c in conditions],
            "description": [c.describe() for c in conditions],
        }
    )
    return RobustnessResult(features, cond_table, icc, failures)


def write_results(
    result: RobustnessResult,
    out_dir: str | Path,
    *,
    group: str = "all",
    icc_type: Literal["ICC(2,1)", "ICC(3,1)"] = "ICC(2,1)",
    threshold: float = 0.75,
    criterion: Literal["lower", "point"] = "lower",
) -> dict[str, Path]:
    """Write the study's tables atomically into ``out_dir``.

    Files: ``icc.csv`` (:func:`icc_table`), ``stable_features.csv`` (:func:`stable_features`
    with the given options), ``features.csv``, ``conditions.csv``, ``failures.csv``.

    Returns
    -------
    dict of str to Path
        File kind -> path.
    """
    stable = stable_features(
        result.icc, group=group, icc_type=icc_type, threshold=threshold, criterion=criterion
    )
    out = Path(out_dir)
    tables = {
        "icc": result.icc,
        "stable_features": stable,
        "features": result.features,
        "conditions": result.conditions,
        "failures": result.failures,
    }
    paths: dict[str, Path] = {}
    for name, table in tables.items():
        path = out / f"{name}.csv"
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False)
        paths[name] = path
    return paths
