"""The label taxonomy: defect classes, capture conditions and piece types, defined once.

Everything that names a defect (generator, manifests, training heads, verdict policy, web pages)
imports these tuples; nothing else in the code base spells a label out.
"""

from __future__ import annotations

from typing import Final

TAXONOMY_VERSION: Final = "1"

# Defects the network sees in a photo. One sigmoid head each, in this order.
VISUAL_DEFECTS: Final[tuple[str, ...]] = (
    "scratch",
    "tarnish",
    "missing_component",
    "broken_link",
    "bent",
    "pitting",
    "finish_flaw",
)

# Defects that only a measurement against the design specification can reveal: a perfect
# brass hoop of the wrong diameter looks flawless to a classifier that does not know the design.
SPEC_DEFECTS: Final[tuple[str, ...]] = (
    "mismatched_pair",
    "wrong_finish_colour",
    "wrong_size",
)

DEFECT_LABELS: Final[tuple[str, ...]] = VISUAL_DEFECTS + SPEC_DEFECTS

DEFECT_DESCRIPTIONS: Final[dict[str, str]] = {
    "scratch": "Scratch: a thin bright or dark line across the surface",
    "tarnish": "Tarnish or oxidation: dull, dark or greenish patches on metal",
    "missing_component": "Missing component: a bead or stone is absent",
    "broken_link": "Broken or open link or clasp",
    "bent": "Bent or deformed shape",
    "pitting": "Pitting or porosity: small pits in the surface",
    "finish_flaw": "Finish flaw: uneven plating or polish",
    "mismatched_pair": "Mismatched pair: the two pieces of a pair differ",
    "wrong_finish_colour": "Wrong finish colour for the design",
    "wrong_size": "Wrong size for the design",
}

# Capture conditions a photo may carry; the generator labels each, evaluation breaks down by them.
CAPTURE_CONDITIONS: Final[tuple[str, ...]] = (
    "rotation",
    "perspective",
    "distance_far",
    "distance_near",
    "defocus_blur",
    "motion_blur",
    "sensor_noise",
    "jpeg_heavy",
    "white_balance",
    "overexposed",
    "underexposed",
    "uneven_light",
    "shadow",
    "clutter",
    "partly_out_of_frame",
    "low_resolution",
    "no_mat",
    "mat_cut_off",
)

PIECE_TYPES: Final[tuple[str, ...]] = (
    "hoop_earring",
    "stud_earring",
    "beaded_bracelet",
    "beaded_necklace",
    "beaded_collar",
    "cuff",
    "pendant",
    "chain_necklace",
    "ring",
)

SOURCES: Final[tuple[str, ...]] = ("synthetic", "imported", "reviewed")
SPLITS: Final[tuple[str, ...]] = ("train", "val", "test", "holdout")


def unknown_labels(labels: list[str] | tuple[str, ...]) -> list[str]:
    """Labels that are not in the defect taxonomy, in the order given."""
    known = set(DEFECT_LABELS)
    return [label for label in labels if label not in known]
