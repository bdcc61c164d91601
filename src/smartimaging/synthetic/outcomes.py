"""Clinical variables and outcomes of the synthetic cohort, from known lesion properties.

The model (documented in ``docs/synthetic.md`` and written to ``cohort.json``)::

    z(v)      = (v - CENTRING[v].mean) / CENTRING[v].sd        fixed population constants
    marker    = exp(log(15) + 0.9 * (0.2 * z(log MTV) + sqrt(0.96) * e1))        e1 ~ N(0, 1)
    stage     = 1 + #{0.8 z(log MTV) + 0.9 (n_lesions - 1.75) + 0.7 e2 > cut}  cuts -0.8, 0.2, 1.1
    lp        = b_vol z(log MTV) + b_het z(heterogeneity) + b_suv z(log SUVmax) + b_age z(age)
                + b_marker z(log marker) + b_stage (stage - 2.5) + sd_noise * e3
    label     ~ Bernoulli(sigmoid(label_gain * lp))
    T         = weibull_scale * (-log U / exp(lp)) ** (1 / weibull_shape)      (hazard ∝ exp(lp))
    C         = min(admin_censoring, Uniform(18, 72)) months;  time = min(T, C), event = T <= C

Centring uses fixed constants (not the cohort's own statistics), so a patient's outcome does not
depend on the size of the cohort it is generated in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CENTRING", "COEFFICIENTS", "ClinicalRecord", "clinical_record"]

COEFFICIENTS: dict[str, float] = {
    "b_vol": 1.3,  # z(log total MTV)
    "b_het": 1.3,  # z(heterogeneity amplitude)
    "b_suv": 0.5,  # z(log programmed SUVmax)
    "b_age": 0.8,  # z(age)
    "b_marker": 0.9,  # z(log tumour marker)
    "b_stage": 0.3,  # per stage above 2.5
    "sd_noise": 0.4,  # unexplained variation of the linear predictor
    "label_gain": 1.6,  # steepness of P(label = 1) = sigmoid(gain * lp)
    "weibull_shape": 1.4,
    "weibull_scale_months": 30.0,
    "admin_censoring_months": 60.0,
}

# (mean, sd) used to standardise each predictor; set from the generator's own distributions
CENTRING: dict[str, tuple[float, float]] = {
    "log_mtv": (3.0, 1.35),
    "heterogeneity": (0.5, 0.289),
    "log_suvmax": (2.2, 0.55),
    "age": (62.0, 12.0),
    "log_marker": (math.log(15.0), 0.9),
}

_STAGE_CUTS = (-0.8, 0.2, 1.1)


def _z(name: str, value: float) -> float:
    mean, sd = CENTRING[name]
    return (value - mean) / sd


@dataclass(frozen=True)
class ClinicalRecord:
    """One row of ``clinical.csv`` plus the linear predictor that generated it."""

    tumour_marker: float
    stage: int
    label: int
    time_months: float
    event: int
    linear_predictor: float


def clinical_record(
    rng: np.random.Generator,
    *,
    total_mtv_ml: float,
    suvmax: float,
    heterogeneity: float,
    n_lesions: int,
    age: float,
) -> ClinicalRecord:
    """Draw the tumour marker, stage, binary label and survival of one patient.

    Parameters
    ----------
    rng : numpy.random.Generator
        The patient's random source.
    total_mtv_ml : float
        Sum of the programmed lesion volumes (ml).
    suvmax : float
        Highest programmed lesion SUV.
    heterogeneity : float
        The patient's texture amplitude parameter in [0, 1].
    n_lesions : int
        Number of lesions.
    age : float
        Age in years.

    Returns
    -------
    ClinicalRecord
    """
    z_mtv = _z("log_mtv", math.log(total_mtv_ml))
    e1, e2, e3 = rng.standard_normal(3)
    marker = math.exp(math.log(15.0) + 0.9 * (0.2 * z_mtv + math.sqrt(0.96) * e1))
    marker = round(marker, 1)
    score = 0.8 * z_mtv + 0.9 * (n_lesions - 1.75) + 0.7 * e2
    stage = 1 + int(sum(score > c for c in _STAGE_CUTS))
    c = COEFFICIENTS
    lp = float(
        c["b_vol"] * z_mtv
        + c["b_het"] * _z("heterogeneity", heterogeneity)
        + c["b_suv"] * _z("log_suvmax", math.log(suvmax))
        + c["b_age"] * _z("age", age)
        + c["b_marker"] * _z("log_marker", math.log(marker))
        + c["b_stage"] * (stage - 2.5)
        + c["sd_noise"] * e3
    )
    p = 1.0 / (1.0 + math.exp(-c["label_gain"] * lp))
    u_label, u_time, u_cens = rng.uniform(size=3)
    label = int(u_label < p)
    t_event = c["weibull_scale_months"] * (-math.log(1.0 - u_time) / math.exp(lp)) ** (
        1.0 / c["weibull_shape"]
    )
    t_cens = min(c["admin_censoring_months"], 18.0 + 54.0 * u_cens)
    event = int(t_event <= t_cens)
    time = round(max(min(t_event, t_cens), 0.1), 1)
    return ClinicalRecord(
        tumour_marker=float(marker),
        stage=stage,
        label=label,
        time_months=float(time),
        event=event,
        linear_predictor=float(lp),
    )
