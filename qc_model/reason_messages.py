"""What the artisan reads about a verdict, in English and Kiswahili: one phrase per reason.

The verdict stores reasons by code (`qc_model.verdict.Reason.code`): a photo-gate code, a defect
class, `<check>_<fail|borderline>` for a spec check, or `photos_disagree`. The artisan page looks
each code up here (served as JSON by serving/web/routes.py) and fills in the few numbers that
help ("about 13 mm too long"); the English `text` stored with the reason is for QC staff.

Kiswahili phrases are built so that no adjective agrees with the piece's noun ("Urefu wa
{piece} ..."), because the piece word comes from another table and noun classes differ.
"""

from __future__ import annotations

from typing import Final

from qc_model.catalog import Measure, PieceType
from qc_model.messages import INTEGRITY_MESSAGES, LANGUAGES, RETAKE_MESSAGES, REVIEW_MESSAGES
from qc_model.taxonomy import DEFECT_LABELS

Phrase = dict[str, str]  # language -> text

PIECE_WORDS: Final[dict[str, Phrase]] = {
    "hoop_earring": {"en": "earring", "sw": "hereni"},
    "stud_earring": {"en": "earring", "sw": "hereni"},
    "beaded_bracelet": {"en": "bracelet", "sw": "bangili"},
    "beaded_necklace": {"en": "necklace", "sw": "mkufu"},
    "beaded_collar": {"en": "collar", "sw": "kola"},
    "cuff": {"en": "cuff", "sw": "bangili"},
    "pendant": {"en": "pendant", "sw": "kidani"},
    "chain_necklace": {"en": "chain", "sw": "mnyororo"},
    "ring": {"en": "ring", "sw": "pete"},
}

COMPONENT_WORDS: Final[dict[str, Phrase]] = {
    "bead": {"en": "beads", "sw": "shanga"},
    "stone": {"en": "stones", "sw": "vito"},
    "link": {"en": "links", "sw": "viungo"},
}

# A defect the model saw ("fail") or may have seen ("review"); also QC's labels on a rejection.
DEFECT_PHRASES: Final[dict[str, dict[str, Phrase]]] = {
    "scratch": {
        "fail": {"en": "There is a scratch on the piece", "sw": "Kuna mkwaruzo kwenye kipande"},
        "review": {"en": "There may be a scratch", "sw": "Huenda kuna mkwaruzo"},
        "label": {"en": "scratch", "sw": "mkwaruzo"},
    },
    "tarnish": {
        "fail": {"en": "The metal is tarnished", "sw": "Chuma kimepoteza mng'ao"},
        "review": {"en": "The metal may be tarnished", "sw": "Huenda chuma kimepoteza mng'ao"},
        "label": {"en": "tarnish", "sw": "kutu au weusi"},
    },
    "missing_component": {
        "fail": {"en": "A bead or stone is missing", "sw": "Shanga au kito kimekosekana"},
        "review": {
            "en": "A bead or stone may be missing",
            "sw": "Huenda shanga au kito kimekosekana",
        },
        "label": {"en": "missing bead or stone", "sw": "shanga au kito kinakosekana"},
    },
    "broken_link": {
        "fail": {"en": "A link or the clasp is open", "sw": "Kiungo au kifungo kiko wazi"},
        "review": {
            "en": "A link or the clasp may be open",
            "sw": "Huenda kiungo au kifungo kiko wazi",
        },
        "label": {"en": "open link or clasp", "sw": "kiungo au kifungo wazi"},
    },
    "bent": {
        "fail": {"en": "The piece is bent out of shape", "sw": "Kipande kimepinda"},
        "review": {"en": "The piece may be bent", "sw": "Huenda kipande kimepinda"},
        "label": {"en": "bent", "sw": "kimepinda"},
    },
    "pitting": {
        "fail": {"en": "The surface has small holes", "sw": "Uso una vishimo vidogo"},
        "review": {
            "en": "The surface may have small holes",
            "sw": "Huenda uso una vishimo vidogo",
        },
        "label": {"en": "small holes in the surface", "sw": "vishimo kwenye uso"},
    },
    "finish_flaw": {
        "fail": {"en": "The polish is uneven", "sw": "Ung'arishaji haulingani"},
        "review": {"en": "The polish may be uneven", "sw": "Huenda ung'arishaji haulingani"},
        "label": {"en": "uneven polish", "sw": "ung'arishaji usio sawa"},
    },
    "mismatched_pair": {
        "fail": {
            "en": "The two pieces of the pair differ",
            "sw": "Vipande viwili vya jozi vinatofautiana",
        },
        "review": {
            "en": "The two pieces of the pair may differ",
            "sw": "Huenda vipande viwili vya jozi vinatofautiana",
        },
        "label": {"en": "pair does not match", "sw": "jozi hazilingani"},
    },
    "wrong_finish_colour": {
        "fail": {"en": "The colour does not match the design", "sw": "Rangi hailingani na muundo"},
        "review": {
            "en": "The colour may not match the design",
            "sw": "Huenda rangi hailingani na muundo",
        },
        "label": {"en": "wrong colour", "sw": "rangi si sahihi"},
    },
    "wrong_size": {
        "fail": {"en": "The size does not match the design", "sw": "Ukubwa haulingani na muundo"},
        "review": {
            "en": "The size may not match the design",
            "sw": "Huenda ukubwa haulingani na muundo",
        },
        "label": {"en": "wrong size", "sw": "ukubwa si sahihi"},
    },
}
assert set(DEFECT_PHRASES) == set(DEFECT_LABELS)

# Size checks: which way the measurement is off. {piece}: the piece word, {mm}: about how much.
_SIZE_WORDS: Final[dict[str, dict[str, Phrase]]] = {
    "loop_length": {
        "over": {"en": "too long", "sw": "Urefu wa {piece} unazidi"},
        "under": {"en": "too short", "sw": "Urefu wa {piece} umepungua"},
    },
    "length": {
        "over": {"en": "too long", "sw": "Urefu wa {piece} unazidi"},
        "under": {"en": "too short", "sw": "Urefu wa {piece} umepungua"},
    },
    "width": {
        "over": {"en": "too wide", "sw": "Upana wa {piece} unazidi"},
        "under": {"en": "too narrow", "sw": "Upana wa {piece} umepungua"},
    },
    "outer_diameter": {
        "over": {"en": "too big across", "sw": "Kipenyo cha {piece} kinazidi"},
        "under": {"en": "too small across", "sw": "Kipenyo cha {piece} kimepungua"},
    },
}
assert set(_SIZE_WORDS) == set(Measure.__args__)  # type: ignore[attr-defined]
assert set(PIECE_WORDS) == set(PieceType.__args__)  # type: ignore[attr-defined]


def _size_phrases() -> dict[str, Phrase]:
    out = {}
    for measure, ways in _SIZE_WORDS.items():
        for way, words in ways.items():
            sw = words["sw"]
            out[f"check.size_{measure}.{way}.fail"] = {
                "en": f"The {{piece}} looks about {{mm}} mm {words['en']}",
                "sw": f"{sw} kwa takriban mm {{mm}}",
            }
            out[f"check.size_{measure}.{way}.borderline"] = {
                "en": f"The {{piece}} may be about {{mm}} mm {words['en']}",
                "sw": f"Huenda {sw[0].lower()}{sw[1:]} kwa takriban mm {{mm}}",
            }
    return out


# Spec checks other than size, and the verdict's own reasons.
_CHECK_PHRASES: Final[dict[str, Phrase]] = {
    "check.size_unsure": {
        "en": "The size could not be measured well: is something else on the card?",
        "sw": "Ukubwa haukuweza kupimwa vizuri: je, kuna kitu kingine juu ya kadi?",
    },
    "check.finish.fail": {
        "en": "The colour of the {piece} does not match the design",
        "sw": "Rangi ya {piece} hailingani na muundo",
    },
    "check.finish.borderline": {
        "en": "The colour of the {piece} may not match the design",
        "sw": "Huenda rangi ya {piece} hailingani na muundo",
    },
    "check.component_count.fail": {
        "en": "We counted {counted} {parts}; the design has {expected}",
        "sw": "Tumehesabu {parts} {counted}; muundo una {expected}",
    },
    "check.component_count.borderline": {
        "en": "We counted {counted} {parts}; the design has {expected}. QC will count again",
        "sw": "Tumehesabu {parts} {counted}; muundo una {expected}. QC watahesabu tena",
    },
    "check.pair_size.fail": {
        "en": "The two pieces of the pair are not the same size",
        "sw": "Vipande viwili vya jozi havilingani kwa ukubwa",
    },
    "check.pair_size.borderline": {
        "en": "The two pieces of the pair may not be the same size",
        "sw": "Huenda vipande viwili vya jozi havilingani kwa ukubwa",
    },
    "check.pair_colour.fail": {
        "en": "The two pieces of the pair are not the same colour",
        "sw": "Vipande viwili vya jozi havilingani kwa rangi",
    },
    "check.pair_colour.borderline": {
        "en": "The two pieces of the pair may not be the same colour",
        "sw": "Huenda vipande viwili vya jozi havilingani kwa rangi",
    },
    "reason.photos_disagree": {
        "en": "One photo shows a problem and another looks fine: QC will look",
        "sw": "Picha moja inaonyesha tatizo na nyingine inaonekana sawa: QC wataangalia",
    },
    "reason.unknown": {
        "en": "QC will look at this photo",
        "sw": "QC wataangalia picha hii",
    },
}

# The server's reasons a piece is held (serving.orders.pieces), whole or before ": <detail>".
PIECE_REASONS: Final[dict[str, Phrase]] = {
    "no photo submitted yet": {"en": "No photo sent yet", "sw": "Bado hujatuma picha"},
    "waiting for QC review": {"en": "Waiting for QC to check", "sw": "Inasubiri ukaguzi wa QC"},
    "photos received, waiting for inspection": {
        "en": "Photo received, waiting to be checked",
        "sw": "Picha imepokelewa, inasubiri kukaguliwa",
    },
    "the inspection could not run; please submit the photos again": {
        "en": "The check could not run: please send the photo again",
        "sw": "Ukaguzi haukuweza kufanyika: tafadhali tuma picha tena",
    },
    "retake needed": {"en": "Take the photo again", "sw": "Piga picha tena"},
    "rejected by QC": {"en": "Not accepted by QC", "sw": "Haikukubaliwa na QC"},
    "take the photos again on the mat, in good light": {
        "en": "Take the photo again on the Kito card, in good light",
        "sw": "Piga picha tena juu ya kadi ya Kito, mahali penye mwanga mzuri",
    },
}


def phrases() -> dict[str, Phrase]:
    """Every phrase the artisan page may show for a reason, by key."""
    out: dict[str, Phrase] = {}
    for code, m in RETAKE_MESSAGES.items():
        out[f"retake.{code}"] = {"en": m.en, "sw": m.sw}
    # A person looks: an unusual surface (anomaly model), a photo sent before (fingerprints).
    for code, m in (REVIEW_MESSAGES | INTEGRITY_MESSAGES).items():
        out[f"reason.{code}"] = {"en": m.en, "sw": m.sw}
    for label, levels in DEFECT_PHRASES.items():
        for level, phrase in levels.items():
            out[f"defect.{label}.{level}"] = phrase
    out |= _size_phrases() | _CHECK_PHRASES
    for text, phrase in PIECE_REASONS.items():
        out[f"piece.{text}"] = phrase
    for piece_type, phrase in PIECE_WORDS.items():
        out[f"word.{piece_type}"] = phrase
    for kind, phrase in COMPONENT_WORDS.items():
        out[f"parts.{kind}"] = phrase
    return out


def page_words() -> dict[str, dict[str, str]]:
    """The phrases as the page loads them: language -> key -> text."""
    table = phrases()
    return {lang: {key: p[lang] for key, p in table.items()} for lang in LANGUAGES}
