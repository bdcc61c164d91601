"""The PACS input stage of a study: find the configured studies on a node and pull them.

Each study lands in ``dicom_dir/<StudyInstanceUID>/``. After a complete pull a marker
``<output_dir>/pacs/<StudyInstanceUID>.json`` records the number of files; the next run skips a
study whose marker is there and whose folder still holds that many files. A study that fails
is reported (stage ``pacs``) and the cohort goes on; an unreachable node stops the run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smartimaging.atomic import write_text
from smartimaging.io.pacs import NodeUnreachableError, PacsError, find_studies, pull
from smartimaging.study.config import PacsInput

__all__ = ["PacsFetch", "fetch_from_pacs"]

log = logging.getLogger(__name__)


@dataclass
class PacsFetch:
    """What the PACS stage did: studies found, pulled, skipped (already complete), failed."""

    n_found: int = 0
    n_pulled: int = 0
    n_skipped: int = 0
    n_files: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)


def _query(cfg: PacsInput) -> list[dict[str, Any]]:
    ids: list[str | None] = list(cfg.patient_ids) if cfg.patient_ids else [None]
    studies: dict[str, dict[str, Any]] = {}
    for pid in ids:
        for study in find_studies(cfg.node, patient_id=pid, study_date=cfg.study_date, modality=cfg.modality):
            uid = study.get("StudyInstanceUID")
            if uid:
                studies[str(uid)] = study
    return [studies[uid] for uid in sorted(studies)]


def _complete(marker: Path, folder: Path) -> bool:
    if not marker.is_file() or not folder.is_dir():
        return False
    try:
        expected = int(json.loads(marker.read_text(encoding="utf-8"))["n_files"])
    except (ValueError, KeyError, TypeError):
        return False
    return sum(1 for p in folder.rglob("*") if p.is_file()) >= expected


def fetch_from_pacs(cfg: PacsInput, dicom_dir: Path, marker_dir: Path) -> PacsFetch:
    """Pull the studies selected by ``cfg`` into ``dicom_dir``.

    Parameters
    ----------
    cfg : PacsInput
        The node, the retrieval method and the study filters (``input.pacs``).
    dicom_dir : Path
        Download folder (created); each study goes to ``dicom_dir/<StudyInstanceUID>/``.
    marker_dir : Path
        Folder of the per-study completion markers.

    Returns
    -------
    PacsFetch
        Counts and one failure row (stage ``pacs``) per study that could not be pulled.

    Raises
    ------
    NodeUnreachableError
        Nothing answers at the node's address (the message names host:port).
    PacsError
        The query itself failed (association rejected, authentication refused, ...).
    """
    dicom_dir.mkdir(parents=True, exist_ok=True)
    marker_dir.mkdir(parents=True, exist_ok=True)
    result = PacsFetch()
    studies = _query(cfg)
    result.n_found = len(studies)
    log.info("PACS %s: %d studies match the filters", cfg.node.address, len(studies))
    for study in studies:
        uid = str(study["StudyInstanceUID"])
        pid = str(study.get("PatientID") or "")
        marker = marker_dir / f"{uid}.json"
        if _complete(marker, dicom_dir / uid):
            result.n_skipped += 1
            continue
        try:
            pulled = pull(cfg.node, dicom_dir, study_uid=uid, method=cfg.pull_method)
        except NodeUnreachableError:
            raise
        except PacsError as exc:
            log.warning("PACS pull of study %s (patient %s) failed: %s", uid, pid, exc)
            result.failures.append(
                {"patient_id": pid, "stage": "pacs", "reason": f"study {uid} from {cfg.node.address}: {exc}"}
            )
            continue
        result.n_pulled += 1
        result.n_files += len(pulled.files)
        write_text(marker, json.dumps({"patient_id": pid, "n_files": len(pulled.files)}, indent=1))
    log.info(
        "PACS %s: %d pulled (%d files), %d already complete, %d failed",
        cfg.node.address,
        result.n_pulled,
        result.n_files,
        result.n_skipped,
        len(result.failures),
    )
    return result
