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
    "InputConfig",
    "ModelConfig",
    "NiftiInput",
    "PacsInput",
    "SUVConfig",
    "SegmentationConfig",
    "SegmentationMethod",
    "StudyConfig",
    "WholeBodyConfig",
    "config_hash",
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


class ModelConfig(_Strict):
    """Which outcome to model and how it is validated."""

    target: str = Field(default="label", description="Binary column of the clinical table.")
    clinical_columns: list[str] = Field(default_factory=list)
    kind: ClassifierKind = "logistic"
    n_splits: int = Field(default=5, ge=2, le=20)
    n_repeats: int = Field(default=5, ge=1, le=100)
    n_permutations: int = Field(default=20, ge=0, le=1000, description="Label shuffles for the chance check.")


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
        return self.model_copy(update={"input": inp, "output_dir": _abs(self.output_dir)})


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


def config_hash(cfg: BaseModel | dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON form of a settings object (stable across runs)."""
    data = cfg.model_dump(mode="json") if isinstance(cfg, BaseModel) else cfg
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
