"""Stage cache of the per-patient work, keyed by content hashes of the inputs and the settings.

Each patient goes through three cached stages, each stored under its own key:

``masks``
    SUV image and lesion masks. Key: the input files' contents, the SUV, segmentation and NIfTI
    input settings, the patient's clinical overrides (weight, dose, ...), the package version.
``features``
    The patient's tidy feature table. Key: the ``masks`` key and the extraction settings.
``overlay``
    The report's segmentation overlay (only with ``report_overlays``). Key: the ``masks`` key.

So a second run recomputes nothing, changing ``features:`` recomputes the features from the stored
SUV and masks, and changing the segmentation (or an input file) recomputes both.

Layout: ``<root>/v<CACHE_FORMAT>/<stage>/<patient>/<key>.npz``. An entry is one ``.npz`` (zip)
file holding named arrays and a JSON header (``__meta__``) with the stage, patient, key and the
SHA-256 of every array. It is written to a uniquely named temporary file beside its final name
and renamed (atomic on POSIX), so concurrent processes and Dask workers can share a cache, and a
process killed mid-write leaves no entry at a final name (at most a dot-prefixed temporary file,
removed by :meth:`StageCache.remove_stale_temporaries`). An entry that cannot be read, whose
header names another key or whose arrays do not match their checksums is reported as a miss,
deleted and recomputed: a damaged entry is never trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import time
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smartimaging import __version__
from smartimaging.atomic import atomic_write

__all__ = [
    "CACHE_FORMAT",
    "STAGES",
    "CacheEntry",
    "StageCache",
    "files_digest",
    "stage_key",
    "table_from_bytes",
    "table_to_bytes",
]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
#: Bumped whenever the stored entries change shape. 3: one parquet + json per patient (the whole
#: result); 4: one entry per stage (masks, features, overlay) under ``v4/``.
CACHE_FORMAT = 4
#: The cached per-patient stages, in processing order.
STAGES: tuple[str, ...] = ("masks", "features", "overlay")
_META = "__meta__"
_LEGACY = re.compile(r".+\.[0-9a-f]{32}\.(parquet|json)")
_STALE_TEMP_S = 3600.0


def files_digest(paths: Iterable[Path]) -> str:
    """SHA-256 over the contents of ``paths`` (sorted by path, names included)."""
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        h.update(str(path.name).encode())
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def stage_key(
    stage: str, settings: Mapping[str, Any], *, parent: str = "", version: str = __version__
) -> str:
    """Cache key of one stage of one patient.

    Parameters
    ----------
    stage : str
        One of :data:`STAGES`.
    settings : mapping
        Everything the stage's result depends on besides its parent stage (JSON-serialisable;
        other values are hashed through ``str``).
    parent : str
        Key of the stage this one is computed from (``""`` for ``masks``, whose settings hold the
        input files' digest).
    version : str
        Package version (a new version recomputes everything).

    Returns
    -------
    str
        32 hexadecimal characters.

    Raises
    ------
    ValueError
        If ``stage`` is not one of :data:`STAGES`.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {list(STAGES)}, got {stage!r}")
    text = json.dumps(
        {"stage": stage, "parent": parent, "settings": settings, "version": version, "format": CACHE_FORMAT},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "_"


def _sha(array: np.ndarray) -> str:
    h = hashlib.sha256(str(array.dtype).encode() + str(array.shape).encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """One stored stage result: named arrays and a JSON-serialisable ``meta`` mapping."""

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


class StageCache:
    """The per-stage, per-patient cache under ``root`` (see the module docstring).

    Parameters
    ----------
    root : path
        Cache folder (created); usually ``<output_dir>/cache``.
    keep : int
        Entries kept per patient and stage; after a store the least recently used ones beyond
        this are deleted, so that trying several settings does not fill the disk.
    """

    def __init__(self, root: str | os.PathLike[str], *, keep: int = 4) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.root = Path(root)
        self.base = self.root / f"v{CACHE_FORMAT}"
        self.keep = keep

    def path(self, stage: str, patient_id: str, key: str) -> Path:
        """The file of an entry (whether or not it exists)."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {list(STAGES)}, got {stage!r}")
        return self.base / stage / _safe(patient_id) / f"{key}.npz"

    def load(self, stage: str, patient_id: str, key: str) -> CacheEntry | None:
        """The stored entry, or None when absent or damaged (a damaged entry is deleted)."""
        path = self.path(stage, patient_id, key)
        if not path.is_file():
            return None
        inode = None
        try:
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                inode = os.fstat(fh.fileno()).st_ino
                arrays = {name: data[name] for name in data.files}
            meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
            expected = {"format": CACHE_FORMAT, "stage": stage, "patient_id": patient_id, "key": key}
            if any(meta.get(k) != v for k, v in expected.items()):
                raise ValueError(f"header { ({k: meta.get(k) for k in expected}) } differs from {expected}")
            sums = meta["sha256"]
            if set(sums) != set(arrays) or any(_sha(arrays[n]) != sums[n] for n in arrays):
                raise ValueError("an array does not match its checksum")
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("cache entry %s is damaged (%s); it is deleted and recomputed", path, exc)
            self._remove_if_same(path, inode)
            return None
        try:
            os.utime(path)  # least recently used pruning
        except OSError:
            pass
        return CacheEntry(arrays, meta["meta"])

    @staticmethod
    def _remove_if_same(path: Path, inode: int | None) -> None:
        """Delete a damaged entry unless another process has meanwhile renamed a new one onto its name."""
        try:
            if inode is None or os.stat(path).st_ino == inode:
                path.unlink()
        except OSError:
            pass

    def store(
        self, stage: str, patient_id: str, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
    ) -> Path:
        """Write an entry atomically (unique temporary file, then rename) and prune old ones."""
        path = self.path(stage, patient_id, key)
        if _META in arrays:
            raise ValueError(f"{_META!r} is reserved")
        header = {
            "format": CACHE_FORMAT,
            "stage": stage,
            "patient_id": patient_id,
            "key": key,
            "sha256": {name: _sha(np.asarray(a)) for name, a in arrays.items()},
            "meta": dict(meta),
        }
        blob = np.frombuffer(json.dumps(header, sort_keys=True, default=str).encode("utf-8"), dtype=np.uint8)
        with atomic_write(path, "wb") as fh:
            members: dict[str, Any] = {_META: blob, **{n: np.asarray(a) for n, a in arrays.items()}}
            np.savez_compressed(fh, **members)
        self._prune(path.parent)
        return path

    def _prune(self, folder: Path) -> None:
        entries = []
        for p in folder.glob("*.npz"):
            if p.name.startswith("."):
                continue
            try:
                entries.append((p.stat().st_mtime, p))
            except OSError:  # removed by another process meanwhile
                continue
        for _, old in sorted(entries, reverse=True)[self.keep :]:
            old.unlink(missing_ok=True)

    def remove_stale_temporaries(self, older_than_s: float = _STALE_TEMP_S) -> int:
        """Delete temporary files left by killed writers (older than ``older_than_s``); their number."""
        if not self.base.is_dir():
            return 0
        now = time.time()
        n = 0
        for p in self.base.glob("*/*/.*"):
            try:
                if now - p.stat().st_mtime > older_than_s:
                    p.unlink()
                    n += 1
            except OSError:
                continue
        return n

    def remove_legacy(self) -> int:
        """Delete the entries of older cache formats in ``root`` (never read); their number."""
        n = 0
        if self.root.is_dir():
            for p in self.root.iterdir():
                if p.is_file() and _LEGACY.fullmatch(p.name):
                    p.unlink(missing_ok=True)
                    n += 1
        return n

    def size_bytes(self) -> int:
        """Disk use (bytes) of the current format's files (entries and temporary files)."""
        total = 0
        for p in self.base.rglob("*"):
            try:
                if p.is_file():
                    total += p.stat().st_size
            except OSError:
                continue
        return total


def table_to_bytes(table: Any) -> np.ndarray:
    """A pandas DataFrame as Parquet bytes (uint8 array) for an entry; exact for float64."""
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def table_from_bytes(blob: np.ndarray) -> Any:
    """The DataFrame stored by :func:`table_to_bytes`."""
    import pandas as pd

    return pd.read_parquet(io.BytesIO(np.asarray(blob, dtype=np.uint8).tobytes()))
