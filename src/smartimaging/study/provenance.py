"""Provenance record of a run: what went in, with which settings and software."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smartimaging import versions
from smartimaging.atomic import write_text
from smartimaging.study.config import StudyConfig, config_hash

__all__ = ["now_iso", "write_provenance"]


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_provenance(
    path: Path,
    config: StudyConfig,
    *,
    started: str,
    input_hashes: Mapping[str, str],
    counts: Mapping[str, int],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``provenance.json``: config and its hash, seed, versions, input hashes, counts."""
    record = {
        "started": started,
        "finished": now_iso(),
        "command": sys.argv,
        "config": config.model_dump(mode="json"),
        "config_sha256": config_hash(config),
        "seed": config.seed,
        "versions": versions(),
        "input_sha256": dict(sorted(input_hashes.items())),
        "counts": dict(counts),
        **(dict(extra) if extra else {}),
    }
    return write_text(path, json.dumps(record, indent=2, sort_keys=False, default=str) + "\n")
