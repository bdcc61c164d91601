"""Per-patient result cache, keyed by a content hash of the inputs and the settings.

A second run recomputes nothing; changing a setting that the per-patient stage uses changes
the key, so only what depends on it is recomputed; a run killed mid-way resumes from the
patients already stored (each entry is written atomically, so a killed write leaves nothing).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from smartimaging.atomic import atomic_path, write_text

__all__ = ["ResultCache", "files_digest"]

_CHUNK = 1 << 20
#: Bumped whenever the stored tables change shape (2: tidy tables gained the ``key`` column).
CACHE_FORMAT = 3


def files_digest(paths: Iterable[Path]) -> str:
    """SHA-256 over the contents of ``paths`` (sorted by path, names included)."""
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        h.update(str(path.name).encode())
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


class ResultCache:
    """A folder of ``<patient>.<key>.parquet`` feature tables and ``.json`` infos."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(inputs_digest: str, settings: Mapping[str, Any], version: str) -> str:
        """Cache key of one patient: input contents + per-patient settings + package version."""
        text = json.dumps(
            {"inputs": inputs_digest, "settings": settings, "version": version, "format": CACHE_FORMAT},
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _paths(self, patient_id: str, key: str) -> tuple[Path, Path]:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in patient_id)
        return self.root / f"{safe}.{key}.parquet", self.root / f"{safe}.{key}.json"

    def load(self, patient_id: str, key: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
        """The stored features and info of a patient, or None when absent."""
        table, info = self._paths(patient_id, key)
        if not (table.is_file() and info.is_file()):
            return None
        return pd.read_parquet(table), json.loads(info.read_text(encoding="utf-8"))

    def store(self, patient_id: str, key: str, features: pd.DataFrame, info: Mapping[str, Any]) -> None:
        """Store a patient's result (features first, the info file last marks it complete)."""
        table, meta = self._paths(patient_id, key)
        with atomic_path(table) as tmp:
            features.to_parquet(tmp, index=False)
        write_text(meta, json.dumps(dict(info), sort_keys=True, default=str))
