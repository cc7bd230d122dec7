"""`RemixRequest`: every option of Ideogram 3.0 Remix, validated once with one-sentence refusals."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.errors import InvalidRequest
from bot.remix import enums

# Runware caps Ideogram prompts at 2000 characters; Ideogram documents no cap. One cap for every
# backend keeps a job portable between backends (a reroll on another backend must not fail).
MAX_PROMPT_CHARS = 2000
MAX_NEGATIVE_PROMPT_CHARS = 2000
MAX_PALETTE_MEMBERS = 8
# Our cap: the API documents no count limit for style codes; eight keeps requests and embeds sane.
MAX_STYLE_CODES = 8
MIN_COLOR_WEIGHT = 0.05
MAX_COLOR_WEIGHT = 1.0

_HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
_STYLE_CODE = re.compile(r"^[0-9a-fA-F]{8}$")
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX:*×]\s*(\d{1,5})\s*$")
# Style types any backend accepts; each backend refuses the ones its model cannot take.
ALL_STYLE_TYPES: tuple[str, ...] = tuple(
    dict.fromkeys(enums.STYLE_TYPES + enums.LEGACY_STYLE_TYPES)
)


def _short(value: object, limit: int = 40) -> str:
    """Quote a user value for a message without echoing a wall of text."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _choice(field_name: str, value: object, allowed: Iterable[str]) -> str:
    """Normalise an enum value case-insensitively, or refuse it naming what is allowed."""
    options = tuple(allowed)
    if not isinstance(value, str) or value.strip().upper() not in options:
        if len(options) <= 12:
            listing = ", ".join(options)
        else:
            listing = f"the {len(options)} allowed values such as {options[0]}"
        raise InvalidRequest(f"{field_name} must be one of {listing}, not {_short(value)}.")
    return value.strip().upper()


def _int(field_name: str, value: object, lo: int, hi: int) -> int:
    """Accept a whole number in [lo, hi] (ints or digit strings), or refuse it."""
    if isinstance(value, bool):
        raise InvalidRequest(f"{field_name} must be a whole number from {lo} to {hi}, not {value}.")
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if not isinstance(value, int):
        raise InvalidRequest(
            f"{field_name} must be a whole number from {lo} to {hi}, not {_short(value)}."
        )
    if not lo <= value <= hi:
        raise InvalidRequest(f"{field_name} must be from {lo} to {hi}, not {value}.")
    return value


def _size(field_name: str, value: object, allowed: tuple[str, ...], example: str) -> str:
    """Normalise `W x H` / `W:H` spellings to `WxH` and check it is one of the allowed values."""
    match = _SIZE.match(value) if isinstance(value, str) else None
    norm = f"{int(match.group(1))}x{int(match.group(2))}" if match else None
    if norm not in allowed:
        listing = (
            "one of " + ", ".join(allowed)
            if len(allowed) <= 15
            else f"an Ideogram size such as {example}"
        )
        raise InvalidRequest(f"{field_name} must be {listing}, not {_short(value)}.")
    return norm


@dataclass(frozen=True)
class PaletteMember:
    """One colour of a custom palette: `#rgb`/`#rrggbb` and an optional weight 0.05-1.0."""

    color_hex: str
    weight: float | None = None

    def __post_init__(self) -> None:
        hex_value = self.color_hex.strip() if isinstance(self.color_hex, str) else self.color_hex
        if isinstance(hex_value, str) and not hex_value.startswith("#"):
            hex_value = "#" + hex_value
        if not isinstance(hex_value, str) or not _HEX_COLOR.match(hex_value):
            raise InvalidRequest(
                f"palette colour must be #rgb or #rrggbb hex like #b470b3, "
                f"not {_short(self.color_hex)}."
            )
        object.__setattr__(self, "color_hex", hex_value.lower())
        if self.weight is not None:
            if isinstance(self.weight, bool) or not isinstance(self.weight, int | float):
                raise InvalidRequest(
                    f"palette colour weight must be a number from 0.05 to 1.0, "
                    f"not {_short(self.weight)}."
                )
            if not MIN_COLOR_WEIGHT <= float(self.weight) <= MAX_COLOR_WEIGHT:
                raise InvalidRequest(
                    f"palette colour weight must be from 0.05 to 1.0, not {self.weight}."
                )
            object.__setattr__(self, "weight", float(self.weight))

    @classmethod
    def parse(cls, text: str) -> PaletteMember:
        """Parse `HEX` or `HEX:WEIGHT` (as typed on the command line or in Discord)."""
        hex_part, sep, weight_part = text.strip().partition(":")
        if not sep:
            return cls(hex_part)
        try:
            weight = float(weight_part)
        except ValueError:
            raise InvalidRequest(
                f"palette colour weight must be a number from 0.05 to 1.0, "
                f"not {_short(weight_part)}."
            ) from None
        return cls(hex_part, weight)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (the job store and the wire encoders use it)."""
        out: dict[str, Any] = {"color_hex": self.color_hex}
        if self.weight is not None:
            out["color_weight"] = self.weight
        return out

    def __str__(self) -> str:
        return self.color_hex if self.weight is None else f"{self.color_hex}:{self.weight:g}"


@dataclass(frozen=True)
class RemixRequest:
    """What a member asked for: prompt plus every Ideogram 3.0 Remix option, validated once."""

    prompt: str
    image_weight: int = 50
    seed: int | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    rendering_speed: str | None = None
    magic_prompt: str | None = None
    negative_prompt: str | None = None
    style_type: str | None = None
    style_preset: str | None = None
    num_images: int = 1
    palette_name: str | None = None
    palette_members: tuple[PaletteMember, ...] = ()
    style_codes: tuple[str, ...] = ()
    model: str | None = None
    style_ref_count: int = 0
    # A member's mask image goes with the request (the bytes travel beside it, like style
    # references): only backends that edit under a mask take it.
    has_mask: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        # Prompt
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InvalidRequest("prompt must be some text describing the remix, not empty.")
        prompt = self.prompt.strip()
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidRequest(
                f"prompt must be at most {MAX_PROMPT_CHARS} characters, not {len(prompt)}."
            )
        set_(self, "prompt", prompt)
        set_(self, "image_weight", _int("image_weight", self.image_weight, 1, 100))
        if self.seed is not None:
            set_(self, "seed", _int("seed", self.seed, 0, enums.MAX_SEED))
        set_(self, "num_images", _int("num_images", self.num_images, 1, enums.MAX_NUM_IMAGES))
        # Size: aspect ratio or resolution, never both.
        if self.aspect_ratio is not None and self.resolution is not None:
            raise InvalidRequest(
                "aspect_ratio and resolution cannot both be given; choose one of them."
            )
        if self.aspect_ratio is not None:
            set_(
                self,
                "aspect_ratio",
                _size("aspect_ratio", self.aspect_ratio, enums.ASPECT_RATIOS, "16x9"),
            )
        if self.resolution is not None:
            allowed = tuple(dict.fromkeys(enums.RESOLUTIONS + enums.LEGACY_RESOLUTIONS))
            set_(self, "resolution", _size("resolution", self.resolution, allowed, "1024x1024"))
        # Enums
        for name, allowed in (
            ("rendering_speed", enums.RENDERING_SPEEDS),
            ("magic_prompt", enums.MAGIC_PROMPTS),
            ("style_type", ALL_STYLE_TYPES),
            ("style_preset", enums.STYLE_PRESETS),
            ("palette_name", enums.PALETTE_PRESETS),
        ):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, _choice(name, value, allowed))
        # Negative prompt: empty means none.
        if self.negative_prompt is not None:
            if not isinstance(self.negative_prompt, str):
                raise InvalidRequest(
                    f"negative_prompt must be text, not {_short(self.negative_prompt)}."
                )
            negative = self.negative_prompt.strip() or None
            if negative is not None and len(negative) > MAX_NEGATIVE_PROMPT_CHARS:
                raise InvalidRequest(
                    f"negative_prompt must be at most {MAX_NEGATIVE_PROMPT_CHARS} characters, "
                    f"not {len(negative)}."
                )
            set_(self, "negative_prompt", negative)
        # Palette: a preset name or 1-8 members, never both.
        members = tuple(
            m if isinstance(m, PaletteMember) else _member_from(m) for m in self.palette_members
        )
        if self.palette_name is not None and members:
            raise InvalidRequest(
                "color palette must be a preset name or a list of colours, not both."
            )
        if len(members) > MAX_PALETTE_MEMBERS:
            raise InvalidRequest(
                f"color palette must have 1 to {MAX_PALETTE_MEMBERS} colours, not {len(members)}."
            )
        set_(self, "palette_members", members)
        # Style codes: 8 hex digits each; exclusive with style_type and style reference images.
        codes = tuple(self.style_codes)
        for code in codes:
            if not isinstance(code, str) or not _STYLE_CODE.match(code.strip()):
                raise InvalidRequest(
                    f"style code must be 8 hexadecimal digits like 5f3a9c01, not {_short(code)}."
                )
        codes = tuple(c.strip().upper() for c in codes)
        if len(codes) > MAX_STYLE_CODES:
            raise InvalidRequest(
                f"style_codes must have at most {MAX_STYLE_CODES} codes, not {len(codes)}."
            )
        set_(self, "style_codes", codes)
        set_(
            self,
            "style_ref_count",
            _int("style reference image count", self.style_ref_count, 0, enums.MAX_STYLE_REFS),
        )
        if not isinstance(self.has_mask, bool):
            raise InvalidRequest(f"has_mask must be true or false, not {_short(self.has_mask)}.")
        if codes and self.style_type is not None:
            raise InvalidRequest("style codes cannot be combined with a style type; choose one.")
        if codes and self.style_ref_count:
            raise InvalidRequest(
                "style codes cannot be combined with style reference images; choose one."
            )
        # Model override (legacy V_* names or Runware AIR ids); each backend checks its own kind.
        if self.model is not None:
            text = self.model.strip() if isinstance(self.model, str) else ""
            if text.upper() in enums.LEGACY_MODELS:
                set_(self, "model", text.upper())
            elif text.lower() in enums.RUNWARE_REMIX_MODELS:
                set_(self, "model", text.lower())
            elif not text:
                set_(self, "model", None)
            else:
                models = ", ".join(enums.LEGACY_MODELS + enums.RUNWARE_REMIX_MODELS)
                raise InvalidRequest(f"model must be one of {models}, not {_short(self.model)}.")

    # --- conveniences -------------------------------------------------------------------------
    @property
    def has_palette(self) -> bool:
        """Whether a colour palette (preset or members) was asked for."""
        return self.palette_name is not None or bool(self.palette_members)

    def palette_dict(self) -> dict[str, Any] | None:
        """The `color_palette` object as Ideogram takes it, or None."""
        if self.palette_name is not None:
            return {"name": self.palette_name}
        if self.palette_members:
            # Ideogram: "list highest first". Colours given without a weight keep their order,
            # after the weighted ones (the API does not say where they rank).
            members = sorted(self.palette_members, key=lambda m: -(m.weight or 0.0))
            return {"members": [m.to_dict() for m in members]}
        return None

    def with_seed(self, seed: int | None) -> RemixRequest:
        """The same request with another seed (rerolls); validated again."""
        return dataclasses.replace(self, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for the job store; `from_dict` reverses it."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "palette_members":
                value = [m.to_dict() for m in value]
            elif f.name == "style_codes":
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RemixRequest:
        """Rebuild (and re-validate) a request from `to_dict` output; unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "palette_members" in kwargs:
            kwargs["palette_members"] = tuple(
                _member_from(m) for m in kwargs["palette_members"] or ()
            )
        if "style_codes" in kwargs:
            kwargs["style_codes"] = tuple(kwargs["style_codes"] or ())
        if "prompt" not in kwargs:
            raise InvalidRequest("prompt must be some text describing the remix, not missing.")
        return cls(**kwargs)

    def non_default_options(self) -> dict[str, Any]:
        """Options that differ from their defaults (prompt excluded), JSON-safe, for result embeds."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "prompt":
                continue
            value = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else None
            if value == default or value in ((), None):
                continue
            if f.name == "palette_members":
                value = " ".join(str(m) for m in value)
            elif f.name == "style_codes":
                value = list(value)
            out[f.name] = value
        return out


def _member_from(value: object) -> PaletteMember:
    """Accept a PaletteMember, a `HEX[:WEIGHT]` string or a `{color_hex, color_weight}` dict."""
    if isinstance(value, PaletteMember):
        return value
    if isinstance(value, str):
        return PaletteMember.parse(value)
    if isinstance(value, Mapping):
        return PaletteMember(
            value.get("color_hex", ""), value.get("color_weight", value.get("weight"))
        )
    raise InvalidRequest(f"palette colour must be #rrggbb[:weight], not {_short(value)}.")


__all__ = ["MAX_PROMPT_CHARS", "PaletteMember", "RemixRequest"]
