"""Embedded synthetic FDG PET/CT cohort generator (the demo's data).

>>> from smartimaging.synthetic import generate_cohort, make_patient
>>> patient = make_patient(0, seed=0)                          # doctest: +SKIP
>>> summary = generate_cohort("demo", n_patients=60, n_jobs=2)  # doctest: +SKIP

See ``docs/synthetic.md`` for the anatomy, uptake, lesion, site and outcome models.
"""

from __future__ import annotations

from smartimaging.synthetic.cohort import CohortSummary, generate_cohort
from smartimaging.synthetic.patient import SITES, LesionTruth, SiteProfile, SyntheticPatient, make_patient

__all__ = [
    "SITES",
    "CohortSummary",
    "LesionTruth",
    "SiteProfile",
    "SyntheticPatient",
    "generate_cohort",
    "make_patient",
]
