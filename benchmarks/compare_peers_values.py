"""Compare smartimaging's feature values with PyRadiomics' and MIRP's on the IBSI 1 phantoms.

Usage (a venv holding PyRadiomics and MIRP, e.g. the peer venv; either peer may be absent)::

    SMARTIMAGING_SHARED=/work/shared PYTHONPATH=src /work/peervenv312/bin/python \\
        benchmarks/compare_peers_values.py [--cases digital,ct] [--out table.md]

Cases, with the same settings given to every tool (no resampling in any tool):

* ``digital``: the IBSI 1 digital phantom, grey levels used as they are (smartimaging: fixed bin
  size 1 from 1; PyRadiomics: ``binWidth=1``, whose first edge ``floor(1 / 1) * 1 = 1`` gives the
  same levels; MIRP: no discretisation), 3D aggregations, distance 1.
* ``ct``: the IBSI 1 CT phantom ROI at its native 0.98 x 0.98 x 3 mm grid, HU rounded to
  integers, range re-segmentation to [-500, 400] HU, fixed bin size 25 HU from -500 (PyRadiomics:
  ``resegmentRange`` and ``binWidth=25``, first edge ``-500 - (-500 mod 25) = -500``; MIRP: the
  re-segmentation range sets the first edge), 3D aggregations, distance 1.

PyRadiomics names are mapped to IBSI features by definition (its GLCM and GLRLM average the
features over the 13 directions: IBSI ``3D_avg``; GLSZM, GLDM (= NGLDM with alpha 0) and NGTDM
are 3D). PyRadiomics reports the kurtosis, IBSI the excess kurtosis: its value minus 3 is
compared. MIRP names are the IBSI short names. The script prints, per case, a Markdown table of
every shared feature (ours, peer, relative difference) and a summary of how many agree within
1e-6 and 1 % relative; ``docs/ibsi.md`` explains the differences. It takes about 2 minutes
(PyRadiomics and MIRP on the 125k-voxel CT ROI).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from smartimaging.features.extract import extract, feature_definitions
from smartimaging.features.settings import ExtractionSettings
from smartimaging.image import Image, Mask

Values = dict[tuple[str, str], float]  # (our key, aggregation) -> value

# PyRadiomics feature name -> (our key, aggregation); class prefix as in its output columns.
PYRADIOMICS: dict[str, tuple[str, str]] = {
    "shape_MeshVolume": ("morph.vol", ""),
    "shape_VoxelVolume": ("morph.approx.vol", ""),
    "shape_SurfaceArea": ("morph.area", ""),
    "shape_SurfaceVolumeRatio": ("morph.av", ""),
    "shape_Sphericity": ("morph.sphericity", ""),
    "shape_Maximum3DDiameter": ("morph.diam", ""),
    "shape_MajorAxisLength": ("morph.pca.major", ""),
    "shape_MinorAxisLength": ("morph.pca.minor", ""),
    "shape_LeastAxisLength": ("morph.pca.least", ""),
    "shape_Elongation": ("morph.pca.elongation", ""),
    "shape_Flatness": ("morph.pca.flatness", ""),
    "firstorder_Mean": ("stat.mean", ""),
    "firstorder_Variance": ("stat.var", ""),
    "firstorder_Skewness": ("stat.skew", ""),
    "firstorder_Kurtosis": ("stat.kurt", ""),
    "firstorder_Median": ("stat.median", ""),
    "firstorder_Minimum": ("stat.min", ""),
    "firstorder_10Percentile": ("stat.p10", ""),
    "firstorder_90Percentile": ("stat.p90", ""),
    "firstorder_Maximum": ("stat.max", ""),
    "firstorder_InterquartileRange": ("stat.iqr", ""),
    "firstorder_Range": ("stat.range", ""),
    "firstorder_MeanAbsoluteDeviation": ("stat.mad", ""),
    "firstorder_RobustMeanAbsoluteDeviation": ("stat.rmad", ""),
    "firstorder_Energy": ("stat.energy", ""),
    "firstorder_RootMeanSquared": ("stat.rms", ""),
    "firstorder_Entropy": ("ih.entropy", ""),
    "firstorder_Uniformity": ("ih.uniformity", ""),
    "glcm_Autocorrelation": ("cm.auto.corr", "3D_avg"),
    "glcm_JointAverage": ("cm.joint.avg", "3D_avg"),
    "glcm_ClusterProminence": ("cm.clust.prom", "3D_avg"),
    "glcm_ClusterShade": ("cm.clust.shade", "3D_avg"),
    "glcm_ClusterTendency": ("cm.clust.tend", "3D_avg"),
    "glcm_Contrast": ("cm.contrast", "3D_avg"),
    "glcm_Correlation": ("cm.corr", "3D_avg"),
    "glcm_DifferenceAverage": ("cm.diff.avg", "3D_avg"),
    "glcm_DifferenceEntropy": ("cm.diff.entr", "3D_avg"),
    "glcm_DifferenceVariance": ("cm.diff.var", "3D_avg"),
    "glcm_JointEnergy": ("cm.energy", "3D_avg"),
    "glcm_JointEntropy": ("cm.joint.entr", "3D_avg"),
    "glcm_Imc1": ("cm.info.corr.1", "3D_avg"),
    "glcm_Imc2": ("cm.info.corr.2", "3D_avg"),
    "glcm_Idm": ("cm.inv.diff.mom", "3D_avg"),
    "glcm_Idmn": ("cm.inv.diff.mom.norm", "3D_avg"),
    "glcm_Id": ("cm.inv.diff", "3D_avg"),
    "glcm_Idn": ("cm.inv.diff.norm", "3D_avg"),
    "glcm_InverseVariance": ("cm.inv.var", "3D_avg"),
    "glcm_MaximumProbability": ("cm.joint.max", "3D_avg"),
    "glcm_SumAverage": ("cm.sum.avg", "3D_avg"),
    "glcm_SumEntropy": ("cm.sum.entr", "3D_avg"),
    "glcm_SumSquares": ("cm.joint.var", "3D_avg"),
    "glrlm_ShortRunEmphasis": ("rlm.sre", "3D_avg"),
    "glrlm_LongRunEmphasis": ("rlm.lre", "3D_avg"),
    "glrlm_GrayLevelNonUniformity": ("rlm.glnu", "3D_avg"),
    "glrlm_GrayLevelNonUniformityNormalized": ("rlm.glnu.norm", "3D_avg"),
    "glrlm_RunLengthNonUniformity": ("rlm.rlnu", "3D_avg"),
    "glrlm_RunLengthNonUniformityNormalized": ("rlm.rlnu.norm", "3D_avg"),
    "glrlm_RunPercentage": ("rlm.r.perc", "3D_avg"),
    "glrlm_GrayLevelVariance": ("rlm.gl.var", "3D_avg"),
    "glrlm_RunVariance": ("rlm.rl.var", "3D_avg"),
    "glrlm_RunEntropy": ("rlm.rl.entr", "3D_avg"),
    "glrlm_LowGrayLevelRunEmphasis": ("rlm.lgre", "3D_avg"),
    "glrlm_HighGrayLevelRunEmphasis": ("rlm.hgre", "3D_avg"),
    "glrlm_ShortRunLowGrayLevelEmphasis": ("rlm.srlge", "3D_avg"),
    "glrlm_ShortRunHighGrayLevelEmphasis": ("rlm.srhge", "3D_avg"),
    "glrlm_LongRunLowGrayLevelEmphasis": ("rlm.lrlge", "3D_avg"),
    "glrlm_LongRunHighGrayLevelEmphasis": ("rlm.lrhge", "3D_avg"),
    "glszm_SmallAreaEmphasis": ("szm.sze", "3D"),
    "glszm_LargeAreaEmphasis": ("szm.lze", "3D"),
    "glszm_GrayLevelNonUniformity": ("szm.glnu", "3D"),
    "glszm_GrayLevelNonUniformityNormalized": ("szm.glnu.norm", "3D"),
    "glszm_SizeZoneNonUniformity": ("szm.zsnu", "3D"),
    "glszm_SizeZoneNonUniformityNormalized": ("szm.zsnu.norm", "3D"),
    "glszm_ZonePercentage": ("szm.z.perc", "3D"),
    "glszm_GrayLevelVariance": ("szm.gl.var", "3D"),
    "glszm_ZoneVariance": ("szm.zs.var", "3D"),
    "glszm_ZoneEntropy": ("szm.zs.entr", "3D"),
    "glszm_LowGrayLevelZoneEmphasis": ("szm.lgze", "3D"),
    "glszm_HighGrayLevelZoneEmphasis": ("szm.hgze", "3D"),
    "glszm_SmallAreaLowGrayLevelEmphasis": ("szm.szlge", "3D"),
    "glszm_SmallAreaHighGrayLevelEmphasis": ("szm.szhge", "3D"),
    "glszm_LargeAreaLowGrayLevelEmphasis": ("szm.lzlge", "3D"),
    "glszm_LargeAreaHighGrayLevelEmphasis": ("szm.lzhge", "3D"),
    "ngtdm_Coarseness": ("ngt.coarseness", "3D"),
    "ngtdm_Contrast": ("ngt.contrast", "3D"),
    "ngtdm_Busyness": ("ngt.busyness", "3D"),
    "ngtdm_Complexity": ("ngt.complexity", "3D"),
    "ngtdm_Strength": ("ngt.strength", "3D"),
    "gldm_SmallDependenceEmphasis": ("ngl.lde", "3D"),
    "gldm_LargeDependenceEmphasis": ("ngl.hde", "3D"),
    "gldm_GrayLevelNonUniformity": ("ngl.glnu", "3D"),
    "gldm_DependenceNonUniformity": ("ngl.dcnu", "3D"),
    "gldm_DependenceNonUniformityNormalized": ("ngl.dcnu.norm", "3D"),
    "gldm_GrayLevelVariance": ("ngl.gl.var", "3D"),
    "gldm_DependenceVariance": ("ngl.dc.var", "3D"),
    "gldm_DependenceEntropy": ("ngl.dc.entr", "3D"),
    "gldm_LowGrayLevelEmphasis": ("ngl.lgce", "3D"),
    "gldm_HighGrayLevelEmphasis": ("ngl.hgce", "3D"),
    "gldm_SmallDependenceLowGrayLevelEmphasis": ("ngl.ldlge", "3D"),
    "gldm_SmallDependenceHighGrayLevelEmphasis": ("ngl.ldhge", "3D"),
    "gldm_LargeDependenceLowGrayLevelEmphasis": ("ngl.hdlge", "3D"),
    "gldm_LargeDependenceHighGrayLevelEmphasis": ("ngl.hdhge", "3D"),
}

# MIRP short names that differ from ours once '_' -> '.' (aggregation suffix removed).
_MIRP_SPECIAL = {
    "morph_volume": "morph.vol",
    "morph_vol_approx": "morph.approx.vol",
    "morph_area_mesh": "morph.area",
    "morph_pca_maj_axis": "morph.pca.major",
    "morph_pca_min_axis": "morph.pca.minor",
    "morph_pca_least_axis": "morph.pca.least",
    "morph_vol_dens_aabb": "morph.v.dens.aabb",
    "morph_area_dens_aabb": "morph.a.dens.aabb",
    "morph_vol_dens_aee": "morph.v.dens.aee",
    "morph_area_dens_aee": "morph.a.dens.aee",
    "morph_vol_dens_conv_hull": "morph.v.dens.conv.hull",
    "morph_area_dens_conv_hull": "morph.a.dens.conv.hull",
    "loc_peak_loc": "loc.peak.local",
    "loc_peak_glob": "loc.peak.global",
    "ih_max_grad_g": "ih.max.grad.gl",
    "ih_min_grad_g": "ih.min.grad.gl",
    "ivh_v10": "ivh.V10",
    "ivh_v90": "ivh.V90",
    "ivh_i10": "ivh.I10",
    "ivh_i90": "ivh.I90",
    "ivh_diff_v10_v90": "ivh.V10minusV90",
    "ivh_diff_i10_i90": "ivh.I10minusI90",
    "cm_info_corr1": "cm.info.corr.1",
    "cm_info_corr2": "cm.info.corr.2",
}
_MIRP_AGG = (("_d1_3d_avg", "3D_avg"), ("_d1_3d_v_mrg", "3D_vmrg"), ("_3d_avg", "3D_avg"))
_MIRP_AGG += (("_3d_v_mrg", "3D_vmrg"), ("_d1_a0.0_3d", "3D"), ("_3d", "3D"))


def _shared_dir() -> Path:
    env = os.environ.get("SMARTIMAGING_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def _read(path: Path) -> Image:
    import SimpleITK as sitk

    return Image.from_sitk(sitk.ReadImage(str(path)))


def load_case(name: str) -> tuple[Image, Mask, dict[str, float | None]]:
    """Image, mask and the discretisation of one case (bin width, first edge, range)."""
    root = _shared_dir() / "ibsi" / "ibsi1"
    if name == "digital":
        folder = root / "digital_phantom"
        image = _read(folder / "image.nii.gz")
        image = image.with_array(np.asarray(image.array, dtype=np.float64))
        mask = Mask.from_image(_read(folder / "mask.nii.gz"))
        return image, mask, {"bin_width": 1.0, "lower": 1.0, "reseg_low": None, "reseg_high": None}
    folder = root / "ct_phantom" / "nifti"
    image = _read(folder / "image.nii.gz")
    image = image.with_array(np.rint(np.asarray(image.array, dtype=np.float64)))  # whole HU, as IBSI advises
    mask = Mask.from_image(_read(folder / "mask.nii.gz"))
    return image, mask, {"bin_width": 25.0, "lower": -500.0, "reseg_low": -500.0, "reseg_high": 400.0}


def run_ours(image: Image, mask: Mask, d: dict[str, float | None]) -> Values:
    reseg = None if d["reseg_low"] is None else (d["reseg_low"], d["reseg_high"])
    settings = ExtractionSettings(
        discretisation="fixed_bin_size",
        bin_width=d["bin_width"],
        bin_lower_bound=d["lower"],
        resegmentation_range=reseg,
        aggregation=("3D", "3D_avg", "3D_vmrg"),
        ivh={"method": "discrete"},
    )
    table = extract(image, mask, settings=settings)
    return {
        (k, a): float(v) for k, a, v in zip(table["key"], table["aggregation"], table["value"], strict=True)
    }


def run_pyradiomics(image: Image, mask: Mask, d: dict[str, float | None]) -> Values | str:
    try:
        from radiomics.featureextractor import RadiomicsFeatureExtractor
    except ImportError:
        return "not installed"
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    params: dict[str, object] = {"binWidth": d["bin_width"], "distances": [1], "force2D": False, "label": 1}
    if d["reseg_low"] is not None:
        params["resegmentRange"] = [d["reseg_low"], d["reseg_high"]]
    extractor = RadiomicsFeatureExtractor(**params)
    extractor.disableAllFeatures()
    extractor.enableAllFeatures()
    smask = Image(mask.array.astype(np.uint8), mask.spacing, mask.origin, mask.direction).to_sitk()
    result = extractor.execute(image.to_sitk(), smask)
    out: Values = {}
    for name, value in result.items():
        short = name.removeprefix("original_")
        if short in PYRADIOMICS:
            c = complex(np.asarray(value).item())  # Imc2 can come back complex (sqrt of a negative)
            v = c.real if c.imag == 0 else float("nan")
            out[PYRADIOMICS[short]] = v - 3.0 if short == "firstorder_Kurtosis" else v
    print(f"pyradiomics {version('pyradiomics-bhklab')}: {len(out)} features mapped", file=sys.stderr)
    return out


def _mirp_key(column: str) -> tuple[str, str] | None:
    column = re.sub(r"_(fbs_w[0-9.]+|fbn_n[0-9]+)$", "", column)  # discretisation suffix
    agg = ""
    for suffix, code in _MIRP_AGG:
        if column.endswith(suffix):
            column, agg = column[: -len(suffix)], code
            break
    key = _MIRP_SPECIAL.get(column, column.replace("_", "."))
    return (key, agg) if key in feature_definitions() else None


def run_mirp(image: Image, mask: Mask, d: dict[str, float | None]) -> Values | str:
    try:
        from mirp import extract_features
    except ImportError:
        return "not installed"
    import SimpleITK as sitk

    logging.getLogger("mirp").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        img_path, mask_path = Path(tmp) / "image.nii.gz", Path(tmp) / "mask.nii.gz"
        sitk.WriteImage(image.to_sitk(), str(img_path))
        smask = Image(mask.array.astype(np.uint8), mask.spacing, mask.origin, mask.direction).to_sitk()
        sitk.WriteImage(smask, str(mask_path))
        kwargs: dict[str, object] = {
            "image_modality": "CT",
            "base_feature_families": "all",
            "ivh_discretisation_method": "none",
            "glcm_distance": 1.0,
            "glcm_spatial_method": ["3d_average", "3d_volume_merge"],
            "glrlm_spatial_method": ["3d_average", "3d_volume_merge"],
            "glszm_spatial_method": "3d",
            "gldzm_spatial_method": "3d",
            "ngtdm_spatial_method": "3d",
            "ngldm_distance": 1.0,
            "ngldm_spatial_method": "3d",
            "ngldm_difference_level": 0.0,
        }
        if d["reseg_low"] is None:
            kwargs["base_discretisation_method"] = "none"
        else:
            kwargs["base_discretisation_method"] = "fixed_bin_size"
            kwargs["base_discretisation_bin_width"] = d["bin_width"]
            kwargs["resegmentation_intensity_range"] = [d["reseg_low"], d["reseg_high"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frames = extract_features(image=str(img_path), mask=str(mask_path), **kwargs)
    row = frames[0].iloc[0]
    out: Values = {}
    for column, value in row.items():
        mapped = _mirp_key(str(column))
        if mapped is not None:
            out[mapped] = float(value)
    print(f"mirp {version('mirp')}: {len(out)} features mapped", file=sys.stderr)
    return out


def _rel(a: float, b: float) -> float:
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


def compare(ours: Values, peers: dict[str, Values | str]) -> pd.DataFrame:
    defs = feature_definitions()
    keys = sorted(
        {k for p in peers.values() if isinstance(p, dict) for k in p if k in ours},
        key=lambda k: (list(defs).index(k[0]), k[1]),
    )
    rows = []
    for key, agg in keys:
        row: dict[str, object] = {"feature": defs[key].name, "ibsi_id": defs[key].ibsi_id, "aggregation": agg}
        row["ours"] = ours[(key, agg)]
        for name, values in peers.items():
            if isinstance(values, dict) and (key, agg) in values:
                row[name] = values[(key, agg)]
                row[f"{name} rel. diff"] = _rel(ours[(key, agg)], values[(key, agg)])
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(table: pd.DataFrame) -> str:
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + " --- |" * len(table.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="digital,ct", help="comma-separated: digital, ct")
    parser.add_argument("--out", type=Path, help="also write the Markdown tables to this file")
    args = parser.parse_args()
    runners: dict[str, Callable[[Image, Mask, dict[str, float | None]], Values | str]] = {
        "pyradiomics": run_pyradiomics,
        "mirp": run_mirp,
    }
    text = []
    for case in args.cases.split(","):
        image, mask, disc = load_case(case)
        ours = run_ours(image, mask, disc)
        peers = {name: run(image, mask, disc) for name, run in runners.items()}
        table = compare(ours, peers)
        text.append(f"## {case} phantom ({mask.n_voxels} voxels)\n")
        for name, values in peers.items():
            if isinstance(values, str):
                text.append(f"{name}: {values}\n")
                continue
            col = table[f"{name} rel. diff"].dropna()
            text.append(
                f"{name}: {len(col)} shared features; {int((col <= 1e-6).sum())} agree within 1e-6 relative, "
                f"{int((col <= 0.01).sum())} within 1 %, {int((col > 0.01).sum())} differ by more than 1 %\n"
            )
        text.append(_markdown(table) + "\n")
    report = "\n".join(text)
    print(report)
    if args.out is not None:
        args.out.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
