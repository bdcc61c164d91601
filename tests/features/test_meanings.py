"""Every feature the extractor can produce has a plain-language meaning; the sentences name real features."""

from __future__ import annotations

from smartimaging.features.extract import feature_definitions
from smartimaging.features.meanings import FAMILY_MEANINGS, FEATURE_MEANINGS, meaning
from smartimaging.features.pet import PATIENT_FEATURES
from smartimaging.features.registry import FAMILIES


def _all_features() -> dict:
    return {**feature_definitions(), **{f.key: f for f in PATIENT_FEATURES}}


def test_every_family_and_every_registered_feature_has_a_meaning() -> None:
    assert set(FAMILY_MEANINGS) == set(FAMILIES)
    for d in _all_features().values():
        text = meaning(d.key, family=d.family)
        assert text and text.endswith(".") and len(text) > 20, d.key


def test_feature_sentences_belong_to_existing_features_and_cover_the_common_families() -> None:
    defs = _all_features()
    assert set(FEATURE_MEANINGS) <= set(defs), sorted(set(FEATURE_MEANINGS) - set(defs))
    # all morphology, statistics, local intensity, IVH and PET features have their own sentence
    for d in defs.values():
        if d.family in {
            "morphology",
            "intensity statistics",
            "local intensity",
            "intensity-volume histogram",
            "PET",
        }:
            assert d.key in FEATURE_MEANINGS, d.key
    # and every texture matrix has sentences for its main features
    for prefix in ("cm.", "rlm.", "szm.", "dzm.", "ngt.", "ngl.", "ih."):
        assert sum(k.startswith(prefix) for k in FEATURE_MEANINGS) >= 5, prefix


def test_fallback_to_the_family_and_unknown_keys() -> None:
    assert meaning("rlm.srlge", family="GLRLM") == FAMILY_MEANINGS["GLRLM"]
    assert meaning("cm.joint.entr").startswith("How unpredictable the pattern of neighbouring intensities")
    assert meaning("age") == "" and meaning("age", family="clinical") == ""
