"""The study file: one YAML document that drives a whole run, validated by a typed schema.

Unknown keys and wrong values are rejected with a message naming the key, the value found and
the allowed values. Relative paths are resolved against the YAML file's folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from smartimaging.exceptions import ConfigError
from smartimaging.features.settings import ExtractionSettings
from smartimaging.io.pacs import DicomNode, DicomWebNode
from smartimaging.learn.models import ClassifierKind

__all__ = [
    "ExternalConfig",
    "HarmoniseConfig",
    "InputConfig",
    "ModelConfig",
    "NiftiInput",
    "PacsInput",
    "SUVConfig",
    "SegmentationConfig",
    "SegmentationMethod",
    "StudyConfig",
    "SurvivalConfig",
    "WholeBodyConfig",
    "config_hash",
    "load_model_config",
    "load_study",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _node_kind(value: Any) -> str | None:
    """Tag of a PACS node: ``dicomweb`` when it has a ``url``, ``dimse`` when it has a ``host``."""
    if isinstance(value, DicomWebNode):
        return "dicomweb"
    if isinstance(value, DicomNode):
        return "dimse"
    if isinstance(value, dict):
        if "url" in value:
            return "dicomweb"
        if "host" in value:
            return "dimse"
    return None


PacsNodeConfig = Annotated[
    Annotated[DicomNode, Tag("dimse")] | Annotated[DicomWebNode, Tag("dicomweb")],
    Discriminator(
        _node_kind,
        custom_error_type="pacs_node",
        custom_error_message=(
            "a PACS node needs either 'url' (DICOMweb) or 'host', 'port' and 'ae_title' (DIMSE)"
        ),
    ),
]


class PacsInput(_Strict):
    """A PACS node to pull the study's images from, and which studies to pull.

    Credentials never appear here: a DICOMweb node names the environment variables holding
    them (``username_env``, ``password_env``).
    """

    node: PacsNodeConfig
    method: Literal["c-get", "c-move", "wado"] | None = Field(
        default=None, description="Retrieval method; default c-get for a DIMSE node, wado for DICOMweb."
    )
    patient_ids: list[str] | None = Field(
        default=None, description="PatientIDs to pull (wildcards * and ? allowed); default: every study."
    )
    study_date: str | None = Field(
        default=None, pattern=r"^\d{8}(-\d{8})?$|^-\d{8}$|^\d{8}-$", description="YYYYMMDD or a range."
    )
    modality: str | None = Field(
        default=None, description="Pull only studies containing this modality (ModalitiesInStudy), e.g. PT."
    )

    @model_validator(mode="after")
    def _method_fits_node(self) -> PacsInput:
        web = isinstance(self.node, DicomWebNode)
        if self.method is None:
            object.__setattr__(self, "method", "wado" if web else "c-get")
        elif web and self.method != "wado":
            raise ValueError(
                f"method {self.method!r} needs a DIMSE node (host, port, ae_title); "
                "a DICOMweb node (url) is pulled with method 'wado'"
            )
        elif not web and self.method == "wado":
            raise ValueError(
                "method 'wado' needs a DICOMweb node (url); a DIMSE node (host) is pulled with "
                "'c-get' or 'c-move'"
            )
        if not web and self.method == "c-move" and self.node.receive_port is None:  # type: ignore[union-attr]
            raise ValueError("method 'c-move' needs node.receive_port (the port the node sends to)")
        return self

    @property
    def pull_method(self) -> Literal["c-get", "c-move", "wado"]:
        """The retrieval method (the default resolved)."""
        assert self.method is not None
        return self.method


class NiftiInput(_Strict):
    """PET images and lesion label maps in NIfTI / NRRD / MetaImage files, one pair per patient.

    ``images`` and ``masks`` are paths (relative to the study file's folder) holding the
    placeholder ``{patient_id}``. Patients are the clinical table's IDs when a table is given,
    otherwise every ID for which ``images`` matches a file.
    """

    images: str = Field(description="PET image path template, e.g. 'nifti/{patient_id}/pet.nii.gz'.")
    masks: str = Field(
        description="Lesion label map path template, e.g. 'nifti/{patient_id}/lesions.nii.gz'."
    )
    units: str = Field(
        default="SUV",
        description="Units of the image values: 'SUV' (already SUV) or 'BQML' (activity concentration, "
        "converted with the per-patient dose, weight and uptake time of the clinical table, see suv.*_column).",
    )
    decay_corrected_to: Literal["start", "admin"] = Field(
        default="start",
        description="BQML only: the time the values are decay corrected to, the scan start (usual) or the "
        "injection.",
    )
    half_life_s: float = Field(
        default=6586.2, gt=0.0, description="BQML only: radionuclide half-life in s (default F-18, 6586.2)."
    )
    labels: dict[int, str] | None = Field(
        default=None,
        description="Label value -> ROI name; only the listed labels are used. Default: every "
        "non-zero label, named 'label_<value>'.",
    )

    @field_validator("images", "masks")
    @classmethod
    def _template(cls, value: str, info: Any) -> str:
        if value.count("{patient_id}") != 1:
            raise ValueError(
                f"input.nifti.{info.field_name} must contain the placeholder '{{patient_id}}' exactly "
                f"once, e.g. 'nifti/{{patient_id}}/pet.nii.gz'; got {value!r}"
            )
        return value

    @field_validator("units")
    @classmethod
    def _units(cls, value: str) -> str:
        if value.upper() == "SUV":
            return "SUV"
        if value.upper() in ("BQML", "BQ/ML"):
            return "BQML"
        raise ValueError(f"units must be 'SUV' (images already in SUV) or 'BQML' (Bq/ml), got {value!r}")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[int, str] | None) -> dict[int, str] | None:
        if value is None:
            return None
        if not value or any(k <= 0 for k in value) or len(set(value.values())) != len(value):
            raise ValueError(
                f"labels maps positive label values to distinct ROI names, e.g. {{1: primary}}; got {value}"
            )
        return value

    def path(self, which: Literal["images", "masks"], patient_id: str) -> Path:
        """The file of ``patient_id`` (``which`` is 'images' or 'masks')."""
        template = self.images if which == "images" else self.masks
        return Path(template.replace("{patient_id}", patient_id))


class InputConfig(_Strict):
    """Where the images and the clinical table are: a DICOM folder (optionally filled from a
    PACS node first) or NIfTI files."""

    dicom_dir: Path | None = Field(
        default=None,
        description="Folder tree holding the DICOM files of every patient (any layout); with "
        "'pacs', the folder the studies are pulled into.",
    )
    pacs: PacsInput | None = Field(default=None, description="Pull the images from this PACS node first.")
    nifti: NiftiInput | None = Field(default=None, description="Read PET and lesion masks from NIfTI files.")
    clinical: Path | None = Field(default=None, description="Clinical table (CSV) with one row per patient.")
    id_column: str = Field(
        default="patient_id", description="Column of the clinical table holding PatientID."
    )

    @model_validator(mode="after")
    def _one_source(self) -> InputConfig:
        if self.nifti is not None and (self.dicom_dir is not None or self.pacs is not None):
            raise ValueError(
                "give either input.nifti or input.dicom_dir (with optional input.pacs), not both"
            )
        if self.nifti is None and self.dicom_dir is None:
            raise ValueError(
                "input needs dicom_dir (the DICOM folder; with pacs, the download folder) or nifti"
            )
        return self


class SUVConfig(_Strict):
    """How PET values are converted to standardised uptake values.

    The ``*_column`` keys name clinical-table columns holding per-patient values. For DICOM input a
    filled cell overrides the header (PatientWeight, PatientSize, PatientSex, RadionuclideTotalDose,
    the injection date-time); for NIfTI input in Bq/ml they are the only source of these values.
    """

    type: Literal["bw", "lbm", "lbm_janma", "bsa", "ibw"] = "bw"
    weight_column: str | None = Field(default=None, description="Column with the patient weight (kg).")
    height_column: str | None = Field(default=None, description="Column with the patient height (m).")
    sex_column: str | None = Field(default=None, description="Column with the patient sex (M, F or O).")
    dose_column: str | None = Field(default=None, description="Column with the injected activity (MBq).")
    injection_time_column: str | None = Field(
        default=None,
        description="DICOM input: column with the injection date-time (ISO, 2025-01-31T09:12:00).",
    )
    uptake_column: str | None = Field(
        default=None,
        description="NIfTI Bq/ml input: column with the uptake time, injection to scan start (min).",
    )

    def columns(self) -> dict[str, str]:
        """Override name (as :func:`smartimaging.io.suv.suv_factor` names it) -> clinical column."""
        named = {
            "weight_kg": self.weight_column,
            "height_m": self.height_column,
            "sex": self.sex_column,
            "dose_bq": self.dose_column,
            "injection_time": self.injection_time_column,
            "uptake_s": self.uptake_column,
        }
        return {k: v for k, v in named.items() if v}


MaskSource = Literal["rtstruct", "seg", "threshold", "whole_body"]


class _Method(_Strict):
    min_volume_ml: float = Field(default=0.0, ge=0.0, description="Drop smaller connected components (ml).")


class FixedMethod(_Method):
    """SUV >= ``threshold``, connected to the lesion maximum."""

    name: Literal["fixed"]
    threshold: float = Field(default=2.5, gt=0.0, description="SUV threshold.")


class RelativeMethod(_Method):
    """>= ``fraction`` of the lesion SUVmax (``reference: max``) or SUVpeak (``peak``)."""

    name: Literal["relative"]
    fraction: float = Field(default=0.4, gt=0.0, le=1.0)
    reference: Literal["max", "peak"] = "max"


class AdaptiveMethod(_Method):
    """Nestle et al. 2005: beta x mean(>70 % max) + background (shell, or a fixed SUV)."""

    name: Literal["adaptive"]
    beta: float = Field(default=0.15, gt=0.0)
    background: float | None = Field(default=None, description="Background SUV; default: the shell mean.")
    shell_inner_mm: float = Field(default=10.0, ge=0.0)
    shell_outer_mm: float = Field(default=20.0, gt=0.0)

    @model_validator(mode="after")
    def _shell(self) -> AdaptiveMethod:
        if self.shell_inner_mm >= self.shell_outer_mm:
            raise ValueError(
                f"shell_inner_mm ({self.shell_inner_mm}) must be below shell_outer_mm ({self.shell_outer_mm})"
            )
        return self


class PercistMethod(_Method):
    """1.5 x liver SUVmean + 2 SD; the liver reference is the ROI ``liver_roi`` of the contour source."""

    name: Literal["percist"]
    liver_roi: str = Field(description="Name (regular expression) of the liver reference ROI / segment.")


class GradientMethod(_Method):
    """Watershed of the SUV gradient magnitude seeded at the lesion maximum."""

    name: Literal["gradient"]
    sigma_mm: float = Field(default=2.0, ge=0.0)
    inner_fraction: float = Field(default=0.4, gt=0.0, le=1.0)
    outer_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    box_radius_mm: float = Field(default=80.0, gt=0.0)

    @model_validator(mode="after")
    def _fractions(self) -> GradientMethod:
        if self.outer_fraction >= self.inner_fraction:
            raise ValueError(
                f"outer_fraction ({self.outer_fraction}) must be below inner_fraction ({self.inner_fraction})"
            )
        return self


class RegionGrowingMethod(_Method):
    """Connected voxels from the lesion maximum whose SUV lies in an interval."""

    name: Literal["region_growing"]
    criterion: Literal["range", "confidence"] = "range"
    lower: float | None = None
    fraction: float | None = Field(default=0.5, gt=0.0, le=1.0)
    upper: float | None = None
    connectivity: Literal[6, 26] = 6
    multiplier: float = Field(default=2.5, gt=0.0)
    iterations: int = Field(default=3, ge=0)


SegmentationMethod = Annotated[
    FixedMethod | RelativeMethod | AdaptiveMethod | PercistMethod | GradientMethod | RegionGrowingMethod,
    Field(discriminator="name"),
]


Organ = Literal["brain", "heart", "bladder", "kidneys"]


def _all_organs() -> list[Organ]:
    return ["brain", "heart", "bladder", "kidneys"]


class WholeBodyConfig(_Strict):
    """Whole-body lesion detection (mask source ``whole_body``)."""

    threshold: float = Field(default=2.5, gt=0.0, description="Candidate SUV threshold.")
    exclude: list[Organ] = Field(default_factory=_all_organs)
    min_volume_ml: float = Field(default=0.5, ge=0.0)


def _default_sources() -> list[MaskSource]:
    return ["rtstruct", "seg"]


class SegmentationConfig(_Strict):
    """Where the lesion masks come from.

    ``source`` lists the mask sources in order of preference; the first one available for a
    patient is used. ``threshold`` delineates each lesion with ``method`` (default: relative at
    ``threshold_fraction`` of its SUVmax) inside a box around the lesion given by the contour
    (RTSTRUCT or SEG) enlarged by ``threshold_margin_mm``: a rough manual ROI refined by the
    method. ``whole_body`` detects every lesion without contours (see ``whole_body``).
    """

    source: list[MaskSource] = Field(default_factory=_default_sources)
    roi: str = Field(
        default=".*", description="ROI name or regular expression (full match, case-insensitive)."
    )
    primary_roi: str | None = Field(
        default=None,
        description="ROI whose lesion features are modelled; default: the largest matching ROI.",
    )
    threshold_fraction: float = Field(default=0.4, gt=0.0, lt=1.0)
    threshold_margin_mm: float = Field(default=10.0, ge=0.0)
    threshold_contour_source: Literal["rtstruct", "seg"] = "seg"
    method: SegmentationMethod | None = Field(
        default=None,
        description=(
            "Method used by the 'threshold' source to refine each contour (name: fixed, relative, "
            "adaptive, percist, gradient or region_growing, plus its parameters); default: relative "
            "at threshold_fraction of SUVmax."
        ),
    )
    whole_body: WholeBodyConfig = WholeBodyConfig()

    @field_validator("source")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("segmentation.source needs at least one of rtstruct, seg, threshold, whole_body")
        if len(set(value)) != len(value):
            raise ValueError(f"segmentation.source lists a source twice: {value}")
        return value


class HarmoniseConfig(_Strict):
    """ComBat harmonisation of the image features, refitted inside every training fold.

    ``batch`` names where each patient's batch comes from: a column of the clinical table
    (e.g. ``site``), or ``qc:`` followed by one or more DICOM keywords of the run's acquisition QC
    table joined with ``+`` (e.g. ``qc:Manufacturer``, ``qc:ManufacturerModelName+ReconstructionMethod``).
    """

    batch: str = Field(description="Clinical column, or 'qc:<DICOM keyword>[+<keyword>...]'.")
    parametric: bool = Field(
        default=True, description="Parametric (True) or non-parametric empirical Bayes priors."
    )
    mean_only: bool = Field(default=False, description="Adjust the location only (no scale).")
    eb: bool = Field(default=True, description="Shrink the batch effects by empirical Bayes.")
    categorical_covariates: list[str] = Field(
        default_factory=list,
        description="Clinical columns whose (biological) effect is preserved, e.g. stage.",
    )
    continuous_covariates: list[str] = Field(
        default_factory=list,
        description="Numeric clinical columns whose linear effect is preserved, e.g. age.",
    )
    modality: Literal["PT", "CT"] = Field(
        default="PT", description="QC batches only: the series (PET 'PT' or CT 'CT') that define the batch."
    )
    min_batch_size: int = Field(
        default=2, ge=1, description="QC batches only: smaller batches are merged into one batch 'other'."
    )

    @field_validator("batch")
    @classmethod
    def _batch(cls, value: str) -> str:
        if value.startswith("qc:"):
            keys = value[3:].split("+")
            if not all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", k) for k in keys):
                raise ValueError(
                    "a QC batch is 'qc:' followed by DICOM keywords joined with '+', e.g. "
                    f"'qc:Manufacturer' or 'qc:ManufacturerModelName+ReconstructionMethod'; got {value!r}"
                )
        elif not value.strip():
            raise ValueError("batch must name a clinical column (e.g. site) or 'qc:<DICOM keyword>'")
        return value

    @property
    def qc_keys(self) -> list[str] | None:
        """The QC keywords of a ``qc:`` batch, or None for a clinical column."""
        return self.batch[3:].split("+") if self.batch.startswith("qc:") else None


class NearZeroVarianceStep(_Strict):
    """Drop near-constant features (caret's nearZeroVar rule); no outcome used."""

    name: Literal["nzv"]
    freq_ratio: float = Field(default=19.0, gt=1.0)
    unique_percent: float = Field(default=10.0, ge=0.0, le=100.0)


class CorrelationStep(_Strict):
    """Cluster features at |Spearman rho| >= threshold and keep one per cluster."""

    name: Literal["correlation"]
    threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    linkage: Literal["average", "complete", "single"] = "average"


class FDRStep(_Strict):
    """Univariate test of every feature against the outcome, Benjamini-Hochberg FDR."""

    name: Literal["fdr"]
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    test: Literal["mannwhitney", "ttest"] = "mannwhitney"
    min_features: int = Field(default=1, ge=1, description="Keep at least this many (smallest p) features.")


class MRMRStep(_Strict):
    """Minimum-redundancy maximum-relevance selection of ``k`` features."""

    name: Literal["mrmr"]
    k: int = Field(default=10, ge=1)
    scheme: Literal["MID", "MIQ"] = "MID"


class L1Step(_Strict):
    """Features with a non-zero coefficient in a cross-validated L1 (or elastic-net) logistic model."""

    name: Literal["l1"]
    l1_ratio: float = Field(default=1.0, gt=0.0, le=1.0)
    Cs: int = Field(default=10, ge=2)


class BorutaStep(_Strict):
    """Boruta all-relevant selection with random-forest shadow features."""

    name: Literal["boruta"]
    n_estimators: int = Field(default=200, ge=10)
    max_iter: int = Field(default=30, ge=5)
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)


class ICCStep(_Strict):
    """Keep the features found stable in a robustness study (``smartimaging robustness`` table)."""

    name: Literal["icc"]
    file: Path = Field(description="CSV with columns feature, icc, stable (or a 'feature' list).")
    min_icc: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Keep icc >= min_icc instead of the 'stable' column."
    )


SelectionStep = Annotated[
    NearZeroVarianceStep | CorrelationStep | FDRStep | MRMRStep | L1Step | BorutaStep | ICCStep,
    Field(discriminator="name"),
]
SELECTION_NAMES = ("nzv", "correlation", "fdr", "mrmr", "l1", "boruta", "icc")

FeatureSetName = Literal["clinical", "radiomics", "pet", "ct", "pet_ct", "combined"]
SurvivalModelKind = Literal["cox", "lasso_cox", "random_survival_forest", "gradient_boosting"]


def _default_feature_sets() -> list[FeatureSetName]:
    return ["clinical", "radiomics", "combined"]


def _default_kinds() -> list[ClassifierKind]:
    return ["logistic"]


def _default_survival_kinds() -> list[SurvivalModelKind]:
    return ["cox", "lasso_cox"]


class SurvivalConfig(_Strict):
    """Time-to-event models of the same feature sets."""

    time: str = Field(description="Clinical column with the follow-up time (event or censoring).")
    event: str = Field(description="Clinical column with the event indicator (1 event, 0 censored).")
    kinds: list[SurvivalModelKind] = Field(
        default_factory=_default_survival_kinds, min_length=1, description="Survival models compared."
    )
    horizons: list[float] | None = Field(
        default=None,
        description="Times of the time-dependent AUC and Brier score; default the 25/50/75th percentiles "
        "of the event times.",
    )
    n_repeats: int = Field(default=1, ge=1, le=50, description="Repeats of the event-stratified CV.")
    time_unit: str = Field(default="months", description="Unit of the time column (axis labels only).")

    @field_validator("horizons")
    @classmethod
    def _horizons(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or any(not v > 0 for v in value)):
            raise ValueError(f"horizons must be a non-empty list of positive times, got {value}")
        return sorted(value) if value is not None else None

    @field_validator("kinds")
    @classmethod
    def _unique_kinds(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"a survival model is listed twice: {value}")
        return value


class ExternalConfig(_Strict):
    """External validation: a site of the same table, or a second feature + clinical table."""

    site_column: str | None = Field(default=None, description="Clinical column identifying the site.")
    site_value: str | None = Field(
        default=None, description="Patients with this site value are the external cohort."
    )
    features: Path | None = Field(
        default=None, description="Feature table of the external cohort (CSV/Parquet)."
    )
    clinical: Path | None = Field(default=None, description="Clinical table of the external cohort (CSV).")

    @model_validator(mode="after")
    def _one_way(self) -> ExternalConfig:
        site = (self.site_column is not None, self.site_value is not None)
        files = (self.features is not None, self.clinical is not None)
        if any(site) and any(files):
            raise ValueError("give either site_column + site_value or features + clinical, not both")
        if any(site) and not all(site):
            raise ValueError("an external site needs both site_column and site_value")
        if any(files) and not all(files):
            raise ValueError("an external cohort from files needs both features and clinical")
        if not any(site) and not any(files):
            raise ValueError("give site_column + site_value, or features + clinical")
        return self


class ModelConfig(_Strict):
    """Which outcome to model, with which features and models, and how it is validated.

    Every default keeps the behaviour of a bare ``model:`` section: L2 logistic regression of the
    clinical, radiomics and combined feature sets, repeated stratified 5 x 5-fold
    cross-validation, no harmonisation and no selection.
    """

    target: str = Field(
        default="label",
        description="Binary (0/1) column of the clinical table; null (read as '') for a survival-only study.",
    )
    clinical_columns: list[str] = Field(default_factory=list)
    kind: ClassifierKind = Field(
        default="logistic",
        description="The primary classifier: shorthand of kinds: [kind], else the first of kinds.",
    )
    kinds: list[ClassifierKind] = Field(
        default_factory=_default_kinds,
        description="Classifiers compared on identical folds; default [kind].",
    )
    feature_sets: list[FeatureSetName] = Field(
        default_factory=_default_feature_sets,
        description="Feature sets compared; those the data lack (no clinical columns, no CT) are skipped.",
    )
    validation: Literal["cv", "nested_cv", "holdout"] = Field(
        default="cv",
        description="cv: repeated stratified k-fold; nested_cv: the same with hyper-parameters tuned by an "
        "inner CV; holdout: one stratified split (test_size held out).",
    )
    n_splits: int = Field(default=5, ge=2, le=20)
    n_repeats: int = Field(default=5, ge=1, le=100)
    inner_splits: int = Field(
        default=3, ge=2, le=10, description="Inner folds (tuning, and the training-fixed threshold)."
    )
    test_size: float = Field(
        default=0.3, gt=0.0, lt=1.0, description="Held-out fraction (validation: holdout)."
    )
    threshold: Literal["youden", "sensitivity"] = Field(
        default="youden", description="How the operating threshold is chosen on training data."
    )
    target_sensitivity: float = Field(default=0.9, gt=0.0, le=1.0)
    impute: Literal["median", "mean", "knn"] = "median"
    transform: Literal["none", "log", "yeo-johnson"] = "none"
    harmonise: HarmoniseConfig | None = None
    selection: list[SelectionStep] = Field(
        default_factory=list, description="Selection steps applied in order inside every training fold."
    )
    survival: SurvivalConfig | None = None
    external: ExternalConfig | None = None
    n_permutations: int = Field(default=20, ge=0, le=1000, description="Label shuffles for the chance check.")
    n_boot: int = Field(default=1000, ge=100, le=20000, description="Bootstrap resamples of the intervals.")
    explain: bool = Field(
        default=True, description="SHAP values and permutation importance of the final model."
    )
    importance_repeats: int = Field(
        default=10, ge=1, le=200, description="Shuffles per feature (permutation importance)."
    )
    nomogram_max_features: int = Field(
        default=8,
        ge=0,
        le=30,
        description="Draw a nomogram when a linear final model uses at most this many.",
    )
    final_model: str | None = Field(
        default=None, description="Model refitted on everyone and explained; default the best AUC."
    )

    @field_validator("selection", mode="before")
    @classmethod
    def _selection_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            out = []
            for item in value:
                if isinstance(item, str):
                    if item not in SELECTION_NAMES:
                        raise ValueError(
                            f"unknown selection step {item!r}; valid names are {list(SELECTION_NAMES)}"
                        )
                    if item == "icc":
                        raise ValueError(
                            "selection step icc needs a file: write {name: icc, file: stable.csv}"
                        )
                    out.append({"name": item})
                else:
                    out.append(item)
            return out
        return value

    @field_validator("feature_sets", "kinds")
    @classmethod
    def _no_duplicates(cls, value: list[str] | None, info: Any) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError(f"{info.field_name} needs at least one entry")
            if len(set(value)) != len(value):
                raise ValueError(f"{info.field_name} lists an entry twice: {value}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _kind_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if "target" in data and data["target"] is None:
                data = {**data, "target": ""}
            kind, kinds = data.get("kind"), data.get("kinds")
            if kinds is None and kind is not None:
                data = {**data, "kinds": [kind]}
            elif kind is None and isinstance(kinds, list) and kinds:
                data = {**data, "kind": kinds[0]}
        return data

    @model_validator(mode="after")
    def _resolve(self) -> ModelConfig:
        if self.kinds[0] != self.kind:
            raise ValueError(
                f"kind {self.kind!r} and kinds {self.kinds} disagree: kind is the first of kinds; give one of them"
            )
        if not self.target and self.survival is None:
            raise ValueError("give target (a binary outcome), survival (time and event), or both")
        if self.target and self.survival is not None:
            clash = {self.survival.time, self.survival.event} & {self.target}
            if clash:
                raise ValueError(f"target {self.target!r} is also a survival column")
        if self.target and self.target in self.clinical_columns:
            raise ValueError(
                f"target {self.target!r} is also in clinical_columns; remove it from the predictors"
            )
        if self.survival is not None:
            used = {self.survival.time, self.survival.event} & set(self.clinical_columns)
            if used:
                raise ValueError(f"survival column(s) {sorted(used)} are also in clinical_columns")
        if self.harmonise is not None and self.harmonise.qc_keys is None:
            if self.harmonise.batch in self.clinical_columns:
                raise ValueError(
                    f"harmonise.batch {self.harmonise.batch!r} is also a clinical predictor; it must not be both"
                )
        if self.validation == "holdout" and self.external is not None:
            raise ValueError(
                "validation holdout and external cannot be combined; use cv or nested_cv with external"
            )
        return self

    def resolve_paths(self, base: Path) -> ModelConfig:
        """A copy whose relative file paths (ICC list, external tables) are made absolute against ``base``."""

        def _abs(p: Path | None) -> Path | None:
            if p is None:
                return None
            return p if p.is_absolute() else (base / p).resolve()

        steps = [
            s.model_copy(update={"file": _abs(s.file)}) if isinstance(s, ICCStep) else s
            for s in self.selection
        ]
        external = self.external
        if external is not None:
            external = external.model_copy(
                update={"features": _abs(external.features), "clinical": _abs(external.clinical)}
            )
        return self.model_copy(update={"selection": steps, "external": external})


class StudyConfig(_Strict):
    """A whole study: inputs, processing settings, modelling and outputs."""

    name: str = "study"
    seed: int = 0
    input: InputConfig
    output_dir: Path = Path("smartimaging_output")
    jobs: int = Field(default=1, ge=1, le=256)
    report_overlays: bool = Field(
        default=True,
        description="Draw a segmentation overlay (PET MIP + fused PET/CT slice with contours) per patient "
        "for the report.",
    )
    executor: Literal["processes", "dask"] = Field(
        default="processes",
        description="Where the per-patient work runs: local processes, or a Dask distributed cluster.",
    )
    dask_scheduler: str | None = Field(
        default=None,
        description="Address of a running Dask scheduler (tcp://host:port) for executor: dask; "
        "without it a local Dask cluster of `jobs` workers is started.",
    )
    suv: SUVConfig = SUVConfig()
    segmentation: SegmentationConfig = SegmentationConfig()
    features: dict[str, Any] = Field(
        default_factory=dict, description="Extraction settings (see smartimaging.features.settings)."
    )
    model: ModelConfig | None = Field(
        default_factory=ModelConfig, description="Outcome modelling; null to extract features only."
    )

    @field_validator("features")
    @classmethod
    def _valid_extraction_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        # validated here, when the study is loaded, not once per patient in the workers
        try:
            ExtractionSettings.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"features.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(problems) from None
        return value

    @field_validator("dask_scheduler")
    @classmethod
    def _valid_scheduler(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(tcp|tls|ucx)://[^\s/]+:\d+", value):
            raise ValueError(
                f"must look like tcp://host:port (the address `dask scheduler` prints), got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _check_executor(self) -> StudyConfig:
        if self.dask_scheduler is not None and self.executor != "dask":
            raise ValueError("dask_scheduler is set but executor is 'processes'; set executor: dask")
        return self

    @model_validator(mode="after")
    def _check_model_needs_clinical(self) -> StudyConfig:
        if self.input.clinical is None and self.model is not None:
            # the target lives in the clinical table: without one no model can be fitted
            raise ValueError(
                "a model needs input.clinical (the table holding the outcome column); "
                "give input.clinical, or set 'model: null' to extract features only"
            )
        if self.suv.columns() and self.input.clinical is None:
            raise ValueError(
                f"suv columns {sorted(self.suv.columns().values())} need input.clinical (the table holding them)"
            )
        nifti = self.input.nifti
        if self.suv.injection_time_column and nifti is not None:
            raise ValueError(
                "suv.injection_time_column applies to DICOM input (the scan time comes from the headers); "
                "for NIfTI input in Bq/ml give suv.uptake_column (minutes from injection to scan start)"
            )
        if nifti is not None and nifti.units == "BQML":
            needed = {"dose_column": "the injected activity (MBq)"}
            if self.suv.type != "ibw":
                needed["weight_column"] = "the weight (kg)"
            if self.suv.type != "bw":
                needed["height_column"] = "the height (m)"
            if self.suv.type in ("lbm", "lbm_janma", "ibw"):
                needed["sex_column"] = "the sex (M, F or O)"
            if nifti.decay_corrected_to == "start":
                needed["uptake_column"] = "the uptake time (min, injection to scan start)"
            lacking = [
                f"suv.{key} ({what})" for key, what in needed.items() if getattr(self.suv, key) is None
            ]
            if lacking:
                raise ValueError(
                    f"input.nifti.units BQML with suv.type {self.suv.type} needs the clinical-table columns "
                    f"holding, per patient: {'; '.join(lacking)}"
                )
        if self.suv.uptake_column and (nifti is None or nifti.units != "BQML"):
            raise ValueError(
                "suv.uptake_column applies to NIfTI input in Bq/ml (input.nifti.units: BQML); DICOM input "
                "takes the times from the headers (override the injection with suv.injection_time_column)"
            )
        return self

    def resolve_paths(self, base: Path) -> StudyConfig:
        """Return a copy whose relative paths are made absolute against ``base``."""

        def _abs(p: Path | None) -> Path | None:
            if p is None:
                return None
            return p if p.is_absolute() else (base / p).resolve()

        update: dict[str, Any] = {
            "dicom_dir": _abs(self.input.dicom_dir),
            "clinical": _abs(self.input.clinical),
        }
        nifti = self.input.nifti
        if nifti is not None:
            update["nifti"] = nifti.model_copy(
                update={k: str(_abs(Path(getattr(nifti, k)))) for k in ("images", "masks")}
            )
        inp = self.input.model_copy(update=update)
        model = None if self.model is None else self.model.resolve_paths(base)
        return self.model_copy(update={"input": inp, "output_dir": _abs(self.output_dir), "model": model})


_CREDENTIAL_WORDS = ("password", "passwd", "secret", "token", "user", "login", "credential", "api_key")


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid study file {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            last = str(e["loc"][-1]).lower() if e["loc"] else ""
            if any(word in last for word in _CREDENTIAL_WORDS):
                lines.append(
                    f"  - key '{key}' is not allowed: credentials are never written in the study file; "
                    "put them in environment variables and name those with username_env / password_env"
                )
            else:
                lines.append(f"  - unknown key '{key}' (check its spelling; see the documented keys)")
            continue
        found = e.get("input")
        found_txt = "" if isinstance(found, dict) else f" (found {found!r})"
        lines.append(f"  - {key}: {e['msg']}{found_txt}")
    return "\n".join(lines)


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML file.

    Parameters
    ----------
    path : str or Path
        The study file.

    Returns
    -------
    StudyConfig
        Validated settings with paths made absolute relative to the file's folder.

    Raises
    ------
    ConfigError
        If the file is missing, is not YAML, or holds unknown keys or invalid values; the
        message names every offending key.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"study file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"study file {p} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"study file {p} must hold a mapping of keys, found {type(raw).__name__}")
    try:
        cfg = StudyConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, str(p))) from None
    return cfg.resolve_paths(p.resolve().parent)


def load_model_config(path: str | Path) -> ModelConfig:
    """Read and validate a model YAML file (the ``model:`` section of a study, on its own).

    The file may hold the section's keys at the top level or under a ``model:`` key. Relative
    paths (ICC list, external tables) are resolved against the file's folder.

    Raises
    ------
    ConfigError
        If the file is missing, is not YAML, or holds unknown keys or invalid values; the message
        names every offending key.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"model file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"model file {p} is not valid YAML: {exc}") from exc
    if isinstance(raw, dict) and set(raw) == {"model"}:
        raw = raw["model"]
    if not isinstance(raw, dict):
        raise ConfigError(f"model file {p} must hold a mapping of keys, found {type(raw).__name__}")
    try:
        cfg = ModelConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            _format_errors(exc, str(p)).replace("invalid study file", "invalid model file")
        ) from None
    return cfg.resolve_paths(p.resolve().parent)


def config_hash(cfg: BaseModel | dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON form of a settings object (stable across runs)."""
    data = cfg.model_dump(mode="json") if isinstance(cfg, BaseModel) else cfg
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
