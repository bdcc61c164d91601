"""De-identification of DICOM folders (PS3.15 Annex E Basic Application Level Confidentiality Profile).

:func:`deidentify` copies every DICOM file under a folder to a new folder after applying the
Basic Profile with two options that PET quantification needs:

* **Retain Longitudinal Temporal Information with Full Dates** (code 113106): dates and times
  are kept, so the uptake time (injection to scan) and the decay correction stay exact;
* **Retain Patient Characteristics** (code 113108): PatientSex, PatientAge, PatientSize,
  PatientWeight (and a few similar attributes) are kept, so SUVbw/SUVlbm/SUVbsa stay exact.

Every UID that is not a DICOM standard UID is replaced by ``2.25.<integer>`` derived from a
keyed hash of the original (SHA-256 of ``salt`` + UID), so references between files (RTSTRUCT
to CT, SEG to PET, frame of reference) stay valid and the same salt gives the same UIDs.
PatientID and PatientName become a pseudonym. The private mapping (original to pseudonym
and UIDs) is written to a CSV file that must lie outside the output folder.

Private attributes are removed except a short safe list needed for SUV and QC (see
:data:`SAFE_PRIVATE`). Pixel data are not inspected: files with BurnedInAnnotation YES are
listed in the report (the Clean Pixel Data option is not implemented).

See docs/deid.md.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from smartimaging.atomic import atomic_path, atomic_write
from smartimaging.exceptions import DicomError, SmartImagingError

__all__ = [
    "BASIC_PROFILE",
    "SAFE_PRIVATE",
    "DeidError",
    "DeidReport",
    "deidentify",
    "map_uid",
    "pseudonym",
    "read_mapping",
]

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


class DeidError(SmartImagingError, ValueError):
    """De-identification cannot run with the given folders or options."""


#: PS3.15 Table E.1-1 actions for the attributes that occur in CT, PET, RTSTRUCT and SEG objects
#: (and the common identifying ones around them): keyword -> (action, retained by option).
#: Actions: D dummy value, Z empty value, X remove, U new UID (every non-standard UID is mapped
#: anyway), K keep. Where the standard allows a choice by attribute type (X/Z, Z/D, X/Z/D), the
#: one safe for every IOD here is taken (D where some IOD makes the attribute type 1).
#: Retained by: "T" Retain Longitudinal Temporal Information (Full Dates), "P" Retain Patient
#: Characteristics.
BASIC_PROFILE: dict[str, tuple[str, str]] = {
    # patient
    "PatientName": ("Z", ""),  # replaced by the pseudonym
    "PatientID": ("Z", ""),  # replaced by the pseudonym
    "IssuerOfPatientID": ("X", ""),
    "PatientBirthDate": ("Z", ""),
    "PatientBirthTime": ("X", ""),
    "PatientBirthName": ("X", ""),
    "PatientMotherBirthName": ("X", ""),
    "PatientAddress": ("X", ""),
    "PatientTelephoneNumbers": ("X", ""),
    "PatientInsurancePlanCodeSequence": ("X", ""),
    "PatientReligiousPreference": ("X", ""),
    "PatientComments": ("X", ""),
    "PatientInstitutionResidence": ("X", ""),
    "PatientState": ("X", "P"),
    "PatientTransportArrangements": ("X", ""),
    "OtherPatientIDs": ("X", ""),
    "OtherPatientIDsSequence": ("X", ""),
    "OtherPatientNames": ("X", ""),
    "ReferencedPatientSequence": ("X", ""),
    "ReferencedPatientAliasSequence": ("X", ""),
    "MedicalRecordLocator": ("X", ""),
    "MilitaryRank": ("X", ""),
    "BranchOfService": ("X", ""),
    "CountryOfResidence": ("X", ""),
    "RegionOfResidence": ("X", ""),
    "Occupation": ("X", ""),
    "InsurancePlanIdentification": ("X", ""),
    "ResponsiblePerson": ("X", ""),
    "ResponsibleOrganization": ("X", ""),
    "PatientBirthDateInAlternativeCalendar": ("X", ""),
    "PatientDeathDateInAlternativeCalendar": ("X", ""),
    "LastMenstrualDate": ("X", ""),
    # patient characteristics (kept with Retain Patient Characteristics)
    "PatientSex": ("Z", "P"),
    "PatientAge": ("X", "P"),
    "PatientSize": ("X", "P"),
    "PatientWeight": ("X", "P"),
    "EthnicGroup": ("X", "P"),
    "SmokingStatus": ("X", "P"),
    "PregnancyStatus": ("X", "P"),
    "PatientSexNeutered": ("Z", "P"),
    "Allergies": ("X", "P"),
    "MedicalAlerts": ("X", "P"),
    "SpecialNeeds": ("X", "P"),
    "AdditionalPatientHistory": ("X", ""),
    # study, visit, request
    "AccessionNumber": ("Z", ""),
    "StudyID": ("Z", ""),
    "StudyIDIssuer": ("X", ""),
    "StudyDescription": ("X", ""),
    "StudyComments": ("X", ""),
    "ReasonForStudy": ("X", ""),
    "ReferencedStudySequence": ("X", ""),
    "ReferencedPerformedProcedureStepSequence": ("X", ""),
    "RequestAttributesSequence": ("X", ""),
    "RequestedProcedureDescription": ("X", ""),
    "RequestedProcedureID": ("X", ""),
    "RequestedProcedureComments": ("X", ""),
    "RequestedProcedureLocation": ("X", ""),
    "RequestedContrastAgent": ("X", ""),
    "RequestingPhysician": ("X", ""),
    "RequestingService": ("X", ""),
    "ReasonForTheRequestedProcedure": ("X", ""),
    "ImagingServiceRequestComments": ("X", ""),
    "PlacerOrderNumberImagingServiceRequest": ("Z", ""),
    "FillerOrderNumberImagingServiceRequest": ("Z", ""),
    "OrderCallbackPhoneNumber": ("X", ""),
    "OrderEnteredBy": ("X", ""),
    "OrderEntererLocation": ("X", ""),
    "AdmissionID": ("X", ""),
    "IssuerOfAdmissionID": ("X", ""),
    "AdmittingDate": ("X", "T"),
    "AdmittingTime": ("X", "T"),
    "AdmittingDiagnosesDescription": ("X", ""),
    "AdmittingDiagnosesCodeSequence": ("X", ""),
    "DischargeDiagnosisDescription": ("X", ""),
    "ServiceEpisodeID": ("X", ""),
    "ServiceEpisodeDescription": ("X", ""),
    "CurrentPatientLocation": ("X", ""),
    "VisitComments": ("X", ""),
    "ScheduledStudyLocation": ("X", ""),
    "ScheduledStudyLocationAETitle": ("X", ""),
    # people
    "ReferringPhysicianName": ("Z", ""),
    "ReferringPhysicianAddress": ("X", ""),
    "ReferringPhysicianTelephoneNumbers": ("X", ""),
    "ReferringPhysicianIdentificationSequence": ("X", ""),
    "PhysiciansOfRecord": ("X", ""),
    "PhysiciansOfRecordIdentificationSequence": ("X", ""),
    "PerformingPhysicianName": ("X", ""),
    "PerformingPhysicianIdentificationSequence": ("X", ""),
    "NameOfPhysiciansReadingStudy": ("X", ""),
    "PhysiciansReadingStudyIdentificationSequence": ("X", ""),
    "OperatorsName": ("Z", ""),
    "OperatorIdentificationSequence": ("X", ""),
    "ScheduledPerformingPhysicianName": ("X", ""),
    "ScheduledPerformingPhysicianIdentificationSequence": ("X", ""),
    "NamesOfIntendedRecipientsOfResults": ("X", ""),
    "PersonName": ("D", ""),
    "PersonAddress": ("X", ""),
    "PersonTelephoneNumbers": ("X", ""),
    "ContentCreatorName": ("Z", ""),
    "ContentCreatorIdentificationCodeSequence": ("X", ""),
    "ReviewerName": ("Z", ""),
    "VerifyingObserverName": ("D", ""),
    "VerifyingObserverSequence": ("D", ""),
    "VerifyingObserverIdentificationCodeSequence": ("Z", ""),
    "VerifyingOrganization": ("X", ""),
    "AuthorObserverSequence": ("X", ""),
    "CustodialOrganizationSequence": ("X", ""),
    "ActualHumanPerformersSequence": ("X", ""),
    "HumanPerformerName": ("X", ""),
    "HumanPerformerOrganization": ("X", ""),
    "ScheduledHumanPerformersSequence": ("X", ""),
    # institution and device
    "InstitutionName": ("X", ""),
    "InstitutionAddress": ("X", ""),
    "InstitutionCodeSequence": ("X", ""),
    "InstitutionalDepartmentName": ("X", ""),
    "StationName": ("X", ""),
    "DeviceSerialNumber": ("D", ""),  # type 1 in the Enhanced General Equipment module (SEG)
    "DeviceUID": ("U", ""),
    "GantryID": ("X", ""),
    "GeneratorID": ("X", ""),
    "CassetteID": ("X", ""),
    "PlateID": ("X", ""),
    "PerformedStationAETitle": ("X", ""),
    "PerformedStationName": ("X", ""),
    "PerformedLocation": ("X", ""),
    "ScheduledStationAETitle": ("X", ""),
    "ScheduledStationName": ("X", ""),
    "ScheduledProcedureStepLocation": ("X", ""),
    "SourceApplicationEntityTitle": ("X", ""),
    # descriptions and comments (free text)
    "SeriesDescription": ("X", ""),
    "SeriesDescriptionCodeSequence": ("X", ""),
    "ProtocolName": ("X", ""),
    "AcquisitionComments": ("X", ""),
    "AcquisitionContextSequence": ("X", ""),  # see _clean_acquisition_context for glucose
    "AcquisitionDeviceProcessingDescription": ("X", ""),
    "AcquisitionProtocolDescription": ("X", ""),
    "ContrastBolusAgent": ("D", ""),
    "DerivationDescription": ("X", ""),
    "ImageComments": ("X", ""),
    "FrameComments": ("X", ""),
    "ImagePresentationComments": ("X", ""),
    "IdentifyingComments": ("X", ""),
    "TextComments": ("X", ""),
    "TextString": ("X", ""),
    "ContributionDescription": ("X", ""),
    "PerformedProcedureStepDescription": ("X", ""),
    "PerformedProcedureStepID": ("X", ""),
    "CommentsOnThePerformedProcedureStep": ("X", ""),
    "ScheduledProcedureStepDescription": ("X", ""),
    "PreMedication": ("X", ""),
    "ConfidentialityConstraintOnPatientDataDescription": ("X", ""),
    "StructureSetName": ("X", ""),
    "StructureSetDescription": ("X", ""),
    "ROIDescription": ("X", ""),
    "ROIGenerationDescription": ("X", ""),
    "ROIObservationDescription": ("X", ""),
    "SegmentDescription": ("X", ""),
    "ContentDescription": ("Z", ""),
    "DeviceDescription": ("X", ""),
    "TopicAuthor": ("X", ""),
    "TopicKeywords": ("X", ""),
    "TopicSubject": ("X", ""),
    "TopicTitle": ("X", ""),
    "IconImageSequence": ("X", ""),
    "ContentSequence": ("X", ""),
    "OriginalAttributesSequence": ("X", ""),
    "ModifiedAttributesSequence": ("X", ""),
    "DigitalSignatureUID": ("X", ""),
    "TimezoneOffsetFromUTC": ("X", "T"),
    # dates and times (kept with Retain Longitudinal Temporal Information, Full Dates)
    "StudyDate": ("Z", "T"),
    "StudyTime": ("Z", "T"),
    "SeriesDate": ("X", "T"),
    "SeriesTime": ("X", "T"),
    "AcquisitionDate": ("Z", "T"),
    "AcquisitionTime": ("Z", "T"),
    "AcquisitionDateTime": ("X", "T"),
    "ContentDate": ("D", "T"),  # type 1 in SEG
    "ContentTime": ("D", "T"),
    "InstanceCreationDate": ("X", "T"),
    "InstanceCreationTime": ("X", "T"),
    "StructureSetDate": ("Z", "T"),
    "StructureSetTime": ("Z", "T"),
    "ContributionDateTime": ("X", "T"),
    "PerformedProcedureStepStartDate": ("X", "T"),
    "PerformedProcedureStepStartTime": ("X", "T"),
    "PerformedProcedureStepEndDate": ("X", "T"),
    "PerformedProcedureStepEndTime": ("X", "T"),
    # UIDs that the standard replaces (U); every other non-standard UID is replaced as well
    "InstanceCreatorUID": ("U", ""),
}

#: Private attributes kept (PS3.15 "Retain Safe Private"): (private creator, group, element
#: offset) -> (why, retained only with Retain Longitudinal Temporal Information).
SAFE_PRIVATE: dict[tuple[str, int, int], tuple[str, bool]] = {
    ("Philips PET Private Group", 0x7053, 0x00): ("SUV Scale Factor (SUV of CNTS images)", False),
    ("Philips PET Private Group", 0x7053, 0x09): (
        "Activity Concentration Scale Factor (CNTS to Bq/ml)",
        False,
    ),
    ("GEMS_PETD_01", 0x0009, 0x0D): ("PET scan_datetime (GE scan start for decay correction)", True),
    ("GEMS_PETD_01", 0x0009, 0xB2): ("PET ir_num_iterations (reconstruction QC)", False),
    ("GEMS_PETD_01", 0x0009, 0xB3): ("PET ir_num_subsets (reconstruction QC)", False),
}

_CODES = {
    "113100": "Basic Application Confidentiality Profile",
    "113106": "Retain Longitudinal Temporal Information Full Dates Option",
    "113108": "Retain Patient Characteristics Option",
    "113111": "Retain Safe Private Option",
}
_STANDARD_UID_ROOT = "1.2.840.10008."
_DUMMY = {
    "PN": "DEIDENTIFIED",
    "LO": "DEIDENTIFIED",
    "SH": "DEIDENTIFIED",
    "LT": "DEIDENTIFIED",
    "ST": "DEIDENTIFIED",
    "UT": "DEIDENTIFIED",
    "CS": "DEIDENTIFIED",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "IS": "0",
    "DS": "0",
}
_TEMPORAL_VRS = ("DA", "TM", "DT")
_PIXEL_DATA = 0x7FE00010
_CONTOUR_DATA = 0x30060050
#: concept names (CodeMeaning, lower case) of a blood glucose measurement in the Acquisition Context
_GLUCOSE_MEANINGS = ("glucose", "blood glucose", "glucose [mass/volume] in blood", "serum glucose")


def _tag(keyword: str) -> BaseTag:
    value = tag_for_keyword(keyword)
    if value is None:  # pragma: no cover - guarded by a test over the whole table
        raise KeyError(keyword)
    return Tag(value)


_PROFILE_BY_TAG: dict[int, tuple[str, str, str]] = {
    int(_tag(k)): (k, action, option) for k, (action, option) in BASIC_PROFILE.items()
}


@dataclass
class DeidReport:
    """What :func:`deidentify` did.

    Attributes
    ----------
    out_dir, mapping_file : Path
        Where the files and the private mapping were written.
    n_files : int
        DICOM files de-identified and written.
    patients : dict
        Original PatientID -> pseudonym.
    n_uids : int
        Distinct UIDs replaced.
    removed_private : int
        Private attributes removed (all files).
    burned_in : list of Path
        Output files whose BurnedInAnnotation is YES: pixel data may show identifying text;
        check them by eye or drop them.
    skipped : list of (Path, str)
        Input files that were not written, with the reason (not DICOM, unreadable).
    """

    out_dir: Path
    mapping_file: Path
    n_files: int = 0
    patients: dict[str, str] = field(default_factory=dict)
    n_uids: int = 0
    removed_private: int = 0
    burned_in: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def map_uid(uid: str, salt: str) -> str:
    """The replacement of ``uid``: ``2.25.`` + the first 128 bits of SHA-256(salt, uid) as an integer.

    Deterministic for a given salt (references between files stay valid); without the salt the
    original cannot be recovered by hashing candidate UIDs. Standard UIDs (``1.2.840.10008.*``,
    SOP classes, transfer syntaxes) are returned unchanged.

    >>> map_uid("1.2.3.4", "s") == map_uid("1.2.3.4", "s")
    True
    """
    uid = uid.strip().rstrip("\x00")
    if not uid or uid.startswith(_STANDARD_UID_ROOT):
        return uid
    digest = hashlib.sha256(f"uid\x00{salt}\x00{uid}".encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def pseudonym(patient_id: str, salt: str) -> str:
    """Default pseudonym of a PatientID: ``SUBJ_`` + 10 hexadecimal digits of SHA-256(salt, id)."""
    digest = hashlib.sha256(f"patient\x00{salt}\x00{patient_id}".encode()).hexdigest()
    return f"SUBJ_{digest[:10].upper()}"


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _private_creator(ds: Dataset, tag: BaseTag) -> str:
    creator = ds.get((tag.group, tag.element >> 8))
    return str(creator.value).strip() if creator is not None else ""


def _safe_private_offsets(ds: Dataset, retain_temporal: bool) -> set[int]:
    """Tags of the private elements of ``ds`` (this level) that the safe list keeps."""
    keep: set[int] = set()
    for tag in ds.keys():
        if not tag.is_private or tag.element < 0x1000:
            continue
        creator = _private_creator(ds, tag)
        rule = SAFE_PRIVATE.get((creator, tag.group, tag.element & 0xFF))
        if rule is not None and (retain_temporal or not rule[1]):
            keep.add(int(tag))
            keep.add(int(Tag(tag.group, tag.element >> 8)))
    return keep


class _Context:
    def __init__(self, salt: str, retain_temporal: bool, retain_patient: bool) -> None:
        self.salt = salt
        self.retain_temporal = retain_temporal
        self.retain_patient = retain_patient
        self.uids: dict[str, str] = {}
        self.removed_private = 0
        self.kept_private = 0
        self.patients: set[str] = set()

    def uid(self, value: str) -> str:
        value = value.strip().rstrip("\x00")
        new = map_uid(value, self.salt)
        if new != value:
            self.uids[value] = new
        return new


def _is_glucose_item(item: Dataset) -> bool:
    names = item.get("ConceptNameCodeSequence") or []
    return any(str(c.get("CodeMeaning", "")).strip().lower() in _GLUCOSE_MEANINGS for c in names)


def _clean_acquisition_context(seq: DicomSequence) -> DicomSequence:
    """Keep only numeric blood-glucose items, rebuilt from their coded concept, value and units."""
    out = DicomSequence()
    for item in seq:
        if not _is_glucose_item(item) or "NumericValue" not in item:
            continue
        new = Dataset()
        new.ValueType = "NUMERIC"
        for keyword in ("ConceptNameCodeSequence", "MeasurementUnitsCodeSequence"):
            if keyword in item:
                codes = DicomSequence()
                for code in item[keyword].value:
                    c = Dataset()
                    for k in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning"):
                        if k in code:
                            setattr(c, k, getattr(code, k))
                    codes.append(c)
                setattr(new, keyword, codes)
        new.NumericValue = item.NumericValue
        out.append(new)
    return out


def _dummy(elem: DataElement, ctx: _Context) -> bool:
    """Give ``elem`` a dummy value; False when it has no dummy for its VR (remove it then)."""
    if elem.VR == "UI":
        elem.value = ctx.uid(str(elem.value or ""))
        return True
    if elem.VR == "SQ":
        elem.value = DicomSequence()
        return True
    if elem.VR in _DUMMY:
        elem.value = _DUMMY[elem.VR]
        return True
    return False


def _clean(ds: Dataset, ctx: _Context) -> None:
    """Apply the profile to ``ds`` and, recursively, to every sequence item in it."""
    keep_private = _safe_private_offsets(ds, ctx.retain_temporal)
    for tag in list(ds.keys()):
        itag = int(tag)
        if tag.is_private:
            if itag in keep_private:
                ctx.kept_private += 1
                continue
            ctx.removed_private += 1
            del ds[tag]
            continue
        if itag in (_PIXEL_DATA, _CONTOUR_DATA):
            continue
        if 0x5000 <= tag.group <= 0x60FF and tag.group & 0xFF00 in (0x5000, 0x6000):
            # curves and overlays may carry annotations burned into graphics planes
            del ds[tag]
            continue
        elem = ds[tag]
        rule = _PROFILE_BY_TAG.get(itag)
        if rule is not None:
            keyword, action, option = rule
            retained = (option == "T" and ctx.retain_temporal) or (option == "P" and ctx.retain_patient)
            if retained:
                action = "K"
            if keyword == "AcquisitionContextSequence" and ctx.retain_patient:
                elem.value = _clean_acquisition_context(elem.value)
                if not elem.value:
                    del ds[tag]
                continue
            if action == "X" or (action == "D" and not _dummy(elem, ctx)):
                del ds[tag]
                continue
            if action == "Z":
                elem.value = DicomSequence() if elem.VR == "SQ" else ""
                continue
            if action in ("D", "U"):
                if action == "U" and elem.VR != "SQ":
                    _map_uid_element(elem, ctx)
                continue
        elif elem.VR in _TEMPORAL_VRS and not ctx.retain_temporal:
            del ds[tag]  # conservative: any other date or time goes with the dates of the profile
            continue
        elif elem.VR == "PN":
            elem.value = ""  # person names not in the table are emptied too
            continue
        if elem.VR == "UI":
            _map_uid_element(elem, ctx)
        elif elem.VR == "SQ":
            for item in elem.value:
                _clean(item, ctx)


def _map_uid_element(elem: DataElement, ctx: _Context) -> None:
    if elem.value is None or elem.value == "":
        return
    if elem.VM > 1:
        elem.value = [ctx.uid(str(v)) for v in elem.value]
    else:
        elem.value = ctx.uid(str(elem.value))


def _method_codes(ctx: _Context) -> DicomSequence:
    codes = ["113100"]
    if ctx.retain_temporal:
        codes.append("113106")
    if ctx.retain_patient:
        codes.append("113108")
    if ctx.kept_private:
        codes.append("113111")
    seq = DicomSequence()
    for value in codes:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = _CODES[value]
        seq.append(item)
    return seq


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text) or "UNKNOWN"


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        out.extend(Path(dirpath) / n for n in sorted(filenames) if not n.startswith("."))
    return out


def deidentify(
    in_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    mapping_file: str | os.PathLike[str],
    salt: str | None = None,
    retain_temporal: bool = True,
    retain_patient_characteristics: bool = True,
    patient_id_map: Mapping[str, str] | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> DeidReport:
    """De-identify every DICOM file under ``in_dir`` into ``out_dir`` (PS3.15 Basic Profile).

    Parameters
    ----------
    in_dir : path
        Folder with the original DICOM files (any layout; non-DICOM files are skipped and
        listed in the report, never copied).
    out_dir : path
        Output folder, written as ``<pseudonym>/<Modality>_<series>/<SOPInstanceUID>.dcm``
        (no original name or folder appears in a path). Each file is written atomically.
    mapping_file : path
        CSV written with ``kind, original, replacement`` rows (PatientID, UID, salt): the key
        to re-identification. It must lie outside ``out_dir``; keep it private.
    salt : str, optional
        Secret mixed into the UID and pseudonym hashes. The same salt gives the same UIDs and
        pseudonyms (re-running, adding patients later); by default a random salt is drawn and
        recorded in the mapping file only.
    retain_temporal : bool
        Retain Longitudinal Temporal Information with Full Dates (needed for SUV: injection and
        scan times). With False every date and time is removed or emptied.
    retain_patient_characteristics : bool
        Keep PatientSex, PatientAge, PatientSize, PatientWeight and similar (needed for SUV).
    patient_id_map : mapping, optional
        Original PatientID -> pseudonym; patients not in it get :func:`pseudonym`.
    progress : callable, optional
        Called as ``progress(done, total)`` after each file.

    Returns
    -------
    DeidReport

    Raises
    ------
    DeidError
        If ``in_dir`` is not a folder, ``out_dir`` is ``in_dir`` or inside it (or the reverse),
        or ``mapping_file`` lies inside ``out_dir``.

    References
    ----------
    DICOM PS3.15 Annex E, Table E.1-1 (Basic Application Level Confidentiality Profile and its
    options); PS3.3 C.12.1.1.7 (DeidentificationMethodCodeSequence, CID 7050).
    """
    src = Path(in_dir)
    dst = Path(out_dir)
    mapping = Path(mapping_file)
    if not src.is_dir():
        raise DeidError(f"input folder not found: {src}")
    if _is_inside(dst, src) or _is_inside(src, dst):
        raise DeidError(
            f"output folder {dst} and input folder {src} overlap; choose an output folder outside the input"
        )
    if _is_inside(mapping, dst):
        raise DeidError(
            f"mapping file {mapping} lies inside the output folder {dst}: it links pseudonyms back to "
            "patients and must be kept apart from the de-identified data; give a path outside the output"
        )
    if _is_inside(mapping, src):
        raise DeidError(f"mapping file {mapping} lies inside the input folder {src}; write it elsewhere")
    key = salt if salt is not None else secrets.token_hex(16)
    ctx = _Context(key, retain_temporal, retain_patient_characteristics)
    names = dict(patient_id_map or {})
    report = DeidReport(out_dir=dst, mapping_file=mapping)
    paths = _walk(src)
    for done, path in enumerate(paths, 1):
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
            report.skipped.append((path, f"not a readable DICOM file ({type(exc).__name__}: {exc})"))
            continue
        if "SOPInstanceUID" not in ds:
            report.skipped.append((path, "DICOM file without SOPInstanceUID (e.g. a DICOMDIR): not copied"))
            continue
        try:
            target = _deidentify_dataset(ds, ctx, names, dst)
        except (ValueError, TypeError, KeyError) as exc:
            report.skipped.append((path, f"cannot de-identify ({type(exc).__name__}: {exc})"))
            continue
        report.n_files += 1
        if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
            report.burned_in.append(target)
            log.warning("%s: BurnedInAnnotation YES; the pixel data may show identifying text", target)
        if progress is not None:
            progress(done, len(paths))
    report.patients = {k: v for k, v in names.items() if k in ctx.patients}
    report.n_uids = len(ctx.uids)
    report.removed_private = ctx.removed_private
    _write_mapping(mapping, key, report.patients, ctx.uids)
    log.info(
        "de-identified %d files of %d patients into %s (%d skipped, %d UIDs replaced)",
        report.n_files,
        len(report.patients),
        dst,
        len(report.skipped),
        report.n_uids,
    )
    return report


def _deidentify_dataset(ds: Dataset, ctx: _Context, names: dict[str, str], dst: Path) -> Path:
    original_id = str(ds.get("PatientID", "") or "")
    if original_id not in names:
        names[original_id] = pseudonym(original_id, ctx.salt)
    alias = names[original_id]
    ctx.patients.add(original_id)
    ctx.kept_private = 0
    _clean(ds, ctx)
    ds.PatientID = alias
    ds.PatientName = alias
    ds.PatientIdentityRemoved = "YES"
    options = ["Basic Profile"]
    if ctx.retain_temporal:
        options.append("Retain Longitudinal Full Dates")
    if ctx.retain_patient:
        options.append("Retain Patient Chars")
    if ctx.kept_private:
        options.append("Retain Safe Private")
    ds.DeidentificationMethod = ("PS3.15 E " + ", ".join(options) + "; smartimaging")[:64]
    ds.DeidentificationMethodCodeSequence = _method_codes(ctx)
    ds.LongitudinalTemporalInformationModified = "UNMODIFIED" if ctx.retain_temporal else "REMOVED"
    meta = ds.file_meta
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "SMARTIMAGING"
    for keyword in (
        "SourceApplicationEntityTitle",
        "SendingApplicationEntityTitle",
        "ReceivingApplicationEntityTitle",
    ):
        if keyword in meta:
            delattr(meta, keyword)
    modality = _safe_name(str(ds.get("Modality", "") or "OT"))
    series = str(ds.get("SeriesInstanceUID", "") or "")
    series_dir = f"{modality}_{hashlib.sha256(series.encode()).hexdigest()[:10]}"
    target = dst / _safe_name(alias) / series_dir / f"{ds.SOPInstanceUID}.dcm"
    with atomic_path(target) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return target


def _write_mapping(path: Path, salt: str, patients: Mapping[str, str], uids: Mapping[str, str]) -> None:
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["kind", "original", "replacement"])
        writer.writerow(["salt", "", salt])
        for original, alias in sorted(patients.items()):
            writer.writerow(["PatientID", original, alias])
        for original, new in sorted(uids.items()):
            writer.writerow(["UID", original, new])


def read_mapping(path: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """Read a mapping file written by :func:`deidentify`: kind -> {original: replacement}.

    Raises
    ------
    DicomError
        If the file is missing or not a mapping file.
    """
    p = Path(path)
    try:
        with open(p, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DicomError(f"cannot read the de-identification mapping file {p}: {exc}") from exc
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        if set(row) != {"kind", "original", "replacement"}:
            raise DicomError(f"{p} is not a de-identification mapping (columns kind, original, replacement)")
        out.setdefault(row["kind"], {})[row["original"]] = row["replacement"]
    return out
