"""Retake instructions for the artisan, one per photo-gate failure, in English and Swahili."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Language = Literal["en", "sw"]
LANGUAGES: Final[tuple[str, ...]] = ("en", "sw")


@dataclass(frozen=True)
class RetakeMessage:
    code: str
    en: str
    sw: str

    def text(self, lang: str = "en") -> str:
        if lang not in LANGUAGES:
            raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")
        return self.en if lang == "en" else self.sw


# Codes are stable: the service stores them and the app may show its own wording for them.
# Each text says what to do first, then why, in words an artisan with a cheap phone can act on.
_MESSAGES: Final[tuple[RetakeMessage, ...]] = (
    RetakeMessage(
        "no_mat",
        "Put the piece on the Kito card and show the whole card: the black squares must be seen",
        "Weka kipande juu ya kadi ya Kito na uonyeshe kadi nzima: miraba myeusi ionekane",
    ),
    RetakeMessage(
        "no_piece",
        "Put the piece in the middle of the card: no piece was found in the photo",
        "Weka kipande katikati ya kadi: hakuna kipande kilichoonekana kwenye picha",
    ),
    RetakeMessage(
        "piece_cut_off",
        "Move the phone back a little: part of the piece is outside the photo",
        "Rudisha simu nyuma kidogo: sehemu ya kipande iko nje ya picha",
    ),
    RetakeMessage(
        "too_far",
        "Move closer: the piece fills too little of the photo",
        "Sogea karibu: kipande kinajaza sehemu ndogo mno ya picha",
    ),
    RetakeMessage(
        "low_resolution",
        "Use the phone's full camera quality and move closer: the photo is too small to measure",
        "Tumia ubora kamili wa kamera na usogee karibu: picha ni ndogo mno kuweza kupimwa",
    ),
    RetakeMessage(
        "blurry",
        "Hold the phone still and tap the piece to focus: the photo is blurry",
        "Shika simu bila kuitikisa na uguse kipande ili kamera ilenge: picha haiko wazi",
    ),
    RetakeMessage(
        "too_dark",
        "Take the photo in more light, near a window or outside in shade: the photo is too dark",
        "Piga picha mahali penye mwanga zaidi, karibu na dirisha au nje kivulini: "
        "picha ina giza mno",
    ),
    RetakeMessage(
        "too_bright",
        "Move out of direct sun and turn off the flash: the photo is too bright",
        "Ondoka kwenye jua kali na uzime flashi: picha ina mwanga mwingi mno",
    ),
    RetakeMessage(
        "pair_incomplete",
        "Put both earrings of the pair on the card, apart from each other",
        "Weka hereni zote mbili za jozi juu ya kadi, zisigusane",
    ),
)

RETAKE_MESSAGES: Final[dict[str, RetakeMessage]] = {m.code: m for m in _MESSAGES}
RETAKE_CODES: Final[tuple[str, ...]] = tuple(RETAKE_MESSAGES)


# Why a piece went to a person, for the artisan (not a retake: the photo was fine).
UNUSUAL_SURFACE: Final = "unusual_surface"
REVIEW_MESSAGES: Final[dict[str, RetakeMessage]] = {
    UNUSUAL_SURFACE: RetakeMessage(
        UNUSUAL_SURFACE,
        "A person will look at this piece: part of it looks unusual for this design",
        "Mtu ataangalia kipande hiki: sehemu yake inaonekana si ya kawaida kwa muundo huu",
    ),
}


def review_message(code: str, lang: str = "en") -> str:
    """The artisan's words for a review reason code in "en" or "sw"."""
    if code not in REVIEW_MESSAGES:
        raise ValueError(f"unknown review code {code!r}; known: {', '.join(REVIEW_MESSAGES)}")
    return REVIEW_MESSAGES[code].text(lang)


def retake_message(code: str, lang: str = "en") -> str:
    """The instruction for a gate failure code in the given language ("en" or "sw")."""
    try:
        message = RETAKE_MESSAGES[code]
    except KeyError:
        raise ValueError(
            f"unknown retake code {code!r}; known: {', '.join(RETAKE_CODES)}"
        ) from None
    return message.text(lang)


# Said to the artisan when a photo is held for a person to check (serving.fingerprints). It
# accuses no one: a person looks, and decides.
INTEGRITY_MESSAGES: Final[dict[str, RetakeMessage]] = {
    "photo_reused": RetakeMessage(
        "photo_reused",
        "This photo looks like one already sent; a person will check",
        "Picha hii inafanana na picha iliyokwisha kutumwa; mtu ataikagua",
    ),
    "design_mismatch": RetakeMessage(
        "design_mismatch",
        "This piece looks like a different design from the one chosen; a person will check",
        "Kipande hiki kinaonekana kuwa muundo tofauti na uliochaguliwa; mtu atakikagua",
    ),
}
