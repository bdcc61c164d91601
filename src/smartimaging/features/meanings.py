"""Plain-language meanings of the IBSI 1 feature families and of the common features.

One sentence each, written for a physician reading a model explanation: what the number
measures in the tumour and, where it helps, which direction means what. Every family has a
sentence (:data:`FAMILY_MEANINGS`); the common features have their own
(:data:`FEATURE_MEANINGS`, keyed by the extractor's machine key); :func:`meaning` falls back
from the feature to its family, so every feature the extractor produces gets a meaning.

The sentences describe the IBSI definitions (Zwanenburg et al., *Radiology* 2020;
IBSI 1 reference manual, arXiv:1612.07003) in words; they are aids to reading, not
definitions. "Grey level" is the discretised intensity (SUV bin on PET).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["FAMILY_MEANINGS", "FEATURE_MEANINGS", "meaning"]

_FAMILIES: dict[str, str] = {
    "morphology": "Shape and size of the segmented lesion (volume, surface, how round or elongated it is).",
    "local intensity": "The hottest small region of the lesion: the mean uptake in a 1 cm³ sphere around the peak.",
    "intensity statistics": "Summary of the uptake values (e.g. SUV) inside the lesion, without regard to where they lie.",
    "intensity histogram": (
        "Summary of the uptake values after grouping them into bins; describes the spread and shape of the "
        "uptake distribution."
    ),
    "intensity-volume histogram": (
        "How much of the lesion volume lies above given uptake levels (the cumulative uptake-volume curve)."
    ),
    "GLCM": (
        "Texture from how often pairs of neighbouring voxels have given uptake levels; describes local "
        "heterogeneity of uptake."
    ),
    "GLRLM": (
        "Texture from runs of consecutive voxels with the same uptake level; long runs mean smooth, "
        "homogeneous regions."
    ),
    "GLSZM": (
        "Texture from connected zones of equal uptake level; many small zones mean fragmented, heterogeneous "
        "uptake."
    ),
    "GLDZM": (
        "Texture from zones of equal uptake level and their distance to the lesion edge; separates rim from "
        "core patterns."
    ),
    "NGTDM": (
        "Texture from the difference between each voxel and the mean of its neighbours; describes how coarse "
        "or busy the uptake pattern looks."
    ),
    "NGLDM": (
        "Texture from how many neighbours share each voxel's uptake level; high dependence means "
        "homogeneous regions."
    ),
    "PET": "Standard PET uptake and burden measures (SUV, metabolic volume, lesion glycolysis).",
}

_H = "higher = more heterogeneous uptake"
_L = "higher = more homogeneous uptake"

_FEATURES: dict[str, str] = {
    # morphology (IBSI 1, 3.1)
    "morph.vol": "Lesion volume computed from its surface mesh; larger = bigger lesion.",
    "morph.approx.vol": "Lesion volume counted voxel by voxel; larger = bigger lesion.",
    "morph.area": "Area of the lesion surface; larger = bigger or more irregular lesion.",
    "morph.av": "Surface area per unit volume; higher = smaller or more irregular lesion.",
    "morph.comp.1": "Compactness (how close to a sphere the shape is); higher = more sphere-like.",
    "morph.comp.2": "Compactness (how close to a sphere the shape is, 1 for a sphere); higher = more sphere-like.",
    "morph.sph.dispr": "How much the surface exceeds that of a sphere of the same volume; higher = more irregular.",
    "morph.sphericity": "How round the lesion is (1 = perfect sphere); lower = more irregular or elongated shape.",
    "morph.asphericity": "Departure from a sphere (0 = sphere); higher = more irregular shape.",
    "morph.com": "Distance between the geometric centre and the uptake-weighted centre; higher = uptake off-centre.",
    "morph.diam": "Largest distance between two points of the lesion surface (maximum diameter).",
    "morph.pca.major": "Length of the lesion along its longest axis.",
    "morph.pca.minor": "Length of the lesion along its second axis.",
    "morph.pca.least": "Length of the lesion along its shortest axis.",
    "morph.pca.elongation": "Ratio of the second to the longest axis; lower = more elongated lesion.",
    "morph.pca.flatness": "Ratio of the shortest to the longest axis; lower = flatter lesion.",
    "morph.v.dens.aabb": "Fraction of its bounding box the lesion fills; lower = more irregular or elongated.",
    "morph.a.dens.aabb": "Surface area relative to that of its bounding box; higher = more irregular surface.",
    "morph.v.dens.aee": "Fraction of an enclosing ellipsoid the lesion fills; lower = more irregular shape.",
    "morph.a.dens.aee": "Surface area relative to that of an enclosing ellipsoid; higher = more irregular surface.",
    "morph.v.dens.conv.hull": "Fraction of its convex hull the lesion fills; lower = more lobulated or concave shape.",
    "morph.a.dens.conv.hull": "Surface area relative to its convex hull; higher = more lobulated surface.",
    "morph.integ.int": "Mean uptake times volume (total uptake of the lesion, like TLG on PET).",
    "morph.moran.i": "Spatial autocorrelation of uptake (Moran's I); higher = similar uptake clusters together.",
    "morph.geary.c": "Spatial autocorrelation of uptake (Geary's C); higher = neighbouring uptake values differ more.",
    # local intensity (IBSI 1, 3.2)
    "loc.peak.local": "Mean uptake in a 1 cm³ sphere around the hottest voxel (SUVpeak-like).",
    "loc.peak.global": "Highest mean uptake of any 1 cm³ sphere inside the lesion.",
    # intensity statistics (IBSI 1, 3.3)
    "stat.mean": "Mean uptake in the lesion (SUVmean on PET).",
    "stat.var": f"Variance of the uptake values in the lesion; {_H}.",
    "stat.skew": "Asymmetry of the uptake distribution; positive = a tail of a few very hot voxels.",
    "stat.kurt": "Peakedness of the uptake distribution; higher = more extreme values (outliers) than a normal curve.",
    "stat.median": "Median uptake in the lesion.",
    "stat.min": "Lowest uptake in the lesion (SUVmin on PET).",
    "stat.p10": "Uptake below which the coolest 10 % of the lesion lies.",
    "stat.p90": "Uptake above which the hottest 10 % of the lesion lies.",
    "stat.max": "Highest uptake in the lesion (SUVmax on PET).",
    "stat.iqr": f"Spread of the middle half of the uptake values (75th minus 25th percentile); {_H}.",
    "stat.range": "Difference between the highest and lowest uptake in the lesion.",
    "stat.mad": f"Average distance of the uptake values from their mean; {_H}.",
    "stat.rmad": f"Average distance from the mean of the central 10-90 % of uptake values; {_H}.",
    "stat.medad": f"Average distance of the uptake values from their median; {_H}.",
    "stat.cov": f"Standard deviation divided by the mean uptake (relative spread); {_H}.",
    "stat.qcod": f"Interquartile range relative to the quartiles (robust relative spread); {_H}.",
    "stat.energy": "Sum of squared uptake values; grows with both lesion size and uptake.",
    "stat.rms": "Root mean square uptake; like the mean but weighting hot voxels more.",
    # intensity histogram (IBSI 1, 3.4): main ones
    "ih.mean": "Mean uptake bin in the lesion.",
    "ih.var": f"Variance of the binned uptake values; {_H}.",
    "ih.skew": "Asymmetry of the binned uptake distribution; positive = a tail of hot voxels.",
    "ih.kurt": "Peakedness of the binned uptake distribution; higher = more extreme values.",
    "ih.median": "Median uptake bin in the lesion.",
    "ih.min": "Lowest uptake bin in the lesion.",
    "ih.max": "Highest uptake bin in the lesion.",
    "ih.mode": "Most frequent uptake bin in the lesion.",
    "ih.entropy": f"How unpredictable the binned uptake value of a voxel is; {_H}.",
    "ih.uniformity": f"How concentrated the uptake values are in few bins; {_L}.",
    "ih.cov": f"Relative spread of the binned uptake values; {_H}.",
    # intensity-volume histogram (IBSI 1, 3.5)
    "ivh.V10": "Fraction of the lesion volume with uptake above 10 % of the uptake range.",
    "ivh.V90": "Fraction of the lesion volume with uptake above 90 % of the uptake range (the hot core).",
    "ivh.I10": "Uptake level exceeded by the hottest 10 % of the lesion volume.",
    "ivh.I90": "Uptake level exceeded by 90 % of the lesion volume.",
    "ivh.V10minusV90": "Fraction of the volume with intermediate uptake (between 10 % and 90 % of the range).",
    "ivh.I10minusI90": "Uptake difference between the hottest 10 % and the bulk (90 %) of the volume.",
    "ivh.auc": "Area under the uptake-volume curve; higher = more of the lesion is hot.",
    # GLCM (IBSI 1, 3.6): main features
    "cm.joint.max": f"Share of the most frequent pair of neighbouring uptake levels; {_L}.",
    "cm.joint.avg": "Average uptake level over pairs of neighbouring voxels.",
    "cm.joint.var": f"Spread of uptake levels over pairs of neighbouring voxels; {_H}.",
    "cm.joint.entr": f"How unpredictable the pattern of neighbouring intensities is; {_H}.",
    "cm.diff.avg": f"Average uptake difference between neighbouring voxels; {_H}.",
    "cm.diff.entr": f"How unpredictable the uptake difference between neighbours is; {_H}.",
    "cm.sum.entr": f"How unpredictable the summed uptake of neighbouring voxels is; {_H}.",
    "cm.energy": f"Angular second moment: how orderly (repetitive) the neighbouring uptake pairs are; {_L}.",
    "cm.contrast": f"Squared uptake difference between neighbouring voxels; higher = sharper local changes, {_H}.",
    "cm.dissimilarity": f"Absolute uptake difference between neighbouring voxels; {_H}.",
    "cm.inv.diff": f"Local homogeneity: large when neighbouring voxels have similar uptake; {_L}.",
    "cm.inv.diff.norm": f"Normalised local homogeneity of neighbouring uptake; {_L}.",
    "cm.inv.diff.mom": f"Local homogeneity weighting small differences most; {_L}.",
    "cm.inv.diff.mom.norm": f"Normalised local homogeneity weighting small differences most; {_L}.",
    "cm.corr": "How linearly the uptake of a voxel predicts that of its neighbour; higher = smoother gradients.",
    "cm.auto.corr": "Product of neighbouring uptake levels; higher = larger regions of high uptake.",
    "cm.clust.tend": "Tendency of voxels with similar uptake to cluster; higher = larger clusters of similar uptake.",
    "cm.clust.shade": "Skewness of the neighbouring-pair distribution; large = asymmetric uptake clusters.",
    "cm.clust.prom": "Peakedness of the neighbouring-pair distribution; large = marked uptake clusters.",
    # GLRLM (IBSI 1, 3.7)
    "rlm.sre": f"Weight of short runs of equal uptake; {_H} (fine texture).",
    "rlm.lre": f"Weight of long runs of equal uptake; {_L} (coarse texture).",
    "rlm.lgre": "Weight of runs at low uptake levels; higher = more low-uptake regions.",
    "rlm.hgre": "Weight of runs at high uptake levels; higher = more high-uptake regions.",
    "rlm.glnu": f"How unevenly runs are spread over uptake levels (grows with lesion size); {_L}.",
    "rlm.glnu.norm": f"How concentrated runs are in few uptake levels, size-independent; {_L}.",
    "rlm.rlnu": "How unevenly runs are spread over run lengths (grows with lesion size).",
    "rlm.rlnu.norm": "How concentrated runs are in few run lengths, size-independent.",
    "rlm.r.perc": f"Number of runs per voxel; higher = shorter runs, {_H}.",
    "rlm.gl.var": f"Spread of uptake levels over the runs; {_H}.",
    "rlm.rl.entr": f"How unpredictable the combination of run length and uptake level is; {_H}.",
    # GLSZM (IBSI 1, 3.8)
    "szm.sze": f"Weight of small zones of equal uptake; {_H} (fragmented uptake).",
    "szm.lze": f"Weight of large zones of equal uptake; {_L}.",
    "szm.lgze": "Weight of zones at low uptake levels; higher = more low-uptake regions.",
    "szm.hgze": "Weight of zones at high uptake levels; higher = more high-uptake regions.",
    "szm.glnu": "How unevenly zones are spread over uptake levels (grows with lesion size).",
    "szm.glnu.norm": f"How concentrated zones are in few uptake levels, size-independent; {_L}.",
    "szm.zsnu": "How unevenly zones are spread over zone sizes (grows with lesion size).",
    "szm.zsnu.norm": "How concentrated zones are in few zone sizes, size-independent.",
    "szm.z.perc": f"Number of zones per voxel; higher = many small zones, {_H}.",
    "szm.gl.var": f"Spread of uptake levels over the zones; {_H}.",
    "szm.zs.var": "Spread of zone sizes; higher = a mix of large and small zones.",
    "szm.zs.entr": f"How unpredictable the combination of zone size and uptake level is; {_H}.",
    # GLDZM (IBSI 1, 3.9)
    "dzm.sde": "Weight of zones close to the lesion edge; higher = uptake pattern dominated by the rim.",
    "dzm.lde": "Weight of zones far from the lesion edge; higher = uptake pattern dominated by the core.",
    "dzm.lgze": "Weight of zones at low uptake levels; higher = more low-uptake regions.",
    "dzm.hgze": "Weight of zones at high uptake levels; higher = more high-uptake regions.",
    "dzm.glnu.norm": f"How concentrated zones are in few uptake levels, size-independent; {_L}.",
    "dzm.zdnu.norm": "How concentrated zones are at few distances from the edge, size-independent.",
    "dzm.z.perc": f"Number of zones per voxel; higher = many small zones, {_H}.",
    "dzm.zd.entr": f"How unpredictable the combination of edge distance and uptake level is; {_H}.",
    # NGTDM (IBSI 1, 3.10)
    "ngt.coarseness": "How slowly uptake changes between neighbourhoods; higher = coarser, more uniform texture.",
    "ngt.contrast": f"Uptake differences between neighbourhoods combined with the uptake range; {_H}.",
    "ngt.busyness": "Rapid changes of uptake between neighbourhoods; higher = busier, more heterogeneous pattern.",
    "ngt.complexity": f"Many sharp uptake changes (edges) in the lesion; {_H}.",
    "ngt.strength": "Large, clearly distinct regions of different uptake; higher = more visible structure.",
    # NGLDM (IBSI 1, 3.11)
    "ngl.lde": f"Weight of voxels with few similar neighbours; {_H}.",
    "ngl.hde": f"Weight of voxels with many similar neighbours; {_L}.",
    "ngl.lgce": "Weight of low uptake levels; higher = more low-uptake regions.",
    "ngl.hgce": "Weight of high uptake levels; higher = more high-uptake regions.",
    "ngl.glnu.norm": f"How concentrated voxels are in few uptake levels, size-independent; {_L}.",
    "ngl.dcnu.norm": "How concentrated voxels are in few dependence counts, size-independent.",
    "ngl.dc.entr": f"How unpredictable the combination of dependence and uptake level is; {_H}.",
    "ngl.dc.energy": f"How concentrated the dependence/uptake combinations are; {_L}.",
    # PET metrics (not IBSI)
    "PET.SUVmax": "Highest standardised uptake value in the lesion (hottest voxel).",
    "PET.SUVmean": "Mean standardised uptake value in the lesion.",
    "PET.SUVpeak": "Mean SUV in a 1 cm³ sphere around the hottest point (less noisy than SUVmax).",
    "PET.SUVmin": "Lowest standardised uptake value in the lesion.",
    "PET.SUVsd": f"Standard deviation of the SUV in the lesion; {_H}.",
    "PET.MTV": "Metabolic tumour volume: volume of the segmented lesion in ml.",
    "PET.TLG": "Total lesion glycolysis: SUVmean times metabolic volume (metabolic tumour burden of the lesion).",
    "PET.TMTV": "Total metabolic tumour volume of all lesions of the patient, in ml (whole-body tumour burden).",
    "PET.TTLG": "Total lesion glycolysis summed over all lesions of the patient (whole-body metabolic burden).",
    "PET.n_lesions": "Number of segmented lesions in the patient.",
    "PET.SUVmax_patient": "Highest SUVmax over all lesions of the patient.",
    "PET.Dmax": "Largest distance between two lesions (dissemination of the disease), in mm.",
    "PET.Dmax_bulk": "Distance from the largest lesion to the farthest other lesion, in mm.",
}

#: Family name (as in :data:`smartimaging.features.registry.FAMILIES`) -> meaning.
FAMILY_MEANINGS: Mapping[str, str] = MappingProxyType(_FAMILIES)

#: Feature key (``"cm.joint.entr"``) -> meaning, for the common features.
FEATURE_MEANINGS: Mapping[str, str] = MappingProxyType(_FEATURES)


def meaning(key: str, *, family: str | None = None) -> str:
    """Plain-language meaning of a feature, falling back to its family's meaning.

    Parameters
    ----------
    key : str
        The extractor's machine key (``"stat.mean"``, ``"PET.SUVmax"``).
    family : str, optional
        The feature's family (:data:`~smartimaging.features.registry.FAMILIES`), used when the
        feature has no sentence of its own.

    Returns
    -------
    str
        The sentence; ``""`` when neither the feature nor the family is known (e.g. a clinical
        variable).

    Examples
    --------
    >>> meaning("cm.joint.entr")
    'How unpredictable the pattern of neighbouring intensities is; higher = more heterogeneous uptake.'
    >>> meaning("rlm.srlge", family="GLRLM").startswith("Texture from runs")
    True
    """
    if key in _FEATURES:
        return _FEATURES[key]
    return _FAMILIES.get(family or "", "")
