"""Every enumeration of the Ideogram remix APIs (as docs/backends.md summarises them), in one place."""

from __future__ import annotations

# --- Ideogram 3.0 Remix (v3) -------------------------------------------------------------
ASPECT_RATIOS: tuple[str, ...] = (
    "1x3", "3x1", "1x2", "2x1", "9x16", "16x9", "10x16", "16x10",
    "2x3", "3x2", "3x4", "4x3", "4x5", "5x4", "1x1",
)  # fmt: skip

RESOLUTIONS: tuple[str, ...] = tuple(
    """512x1536 576x1408 576x1472 576x1536 640x1344 640x1408 640x1472 640x1536 704x1152 704x1216
    704x1280 704x1344 704x1408 704x1472 736x1312 768x1088 768x1216 768x1280 768x1344 800x1280
    832x960 832x1024 832x1088 832x1152 832x1216 832x1248 864x1152 896x960 896x1024 896x1088
    896x1120 896x1152 960x832 960x896 960x1024 960x1088 1024x832 1024x896 1024x960 1024x1024
    1088x768 1088x832 1088x896 1088x960 1120x896 1152x704 1152x832 1152x864 1152x896 1216x704
    1216x768 1216x832 1248x832 1280x704 1280x768 1280x800 1312x736 1344x640 1344x704 1344x768
    1408x576 1408x640 1408x704 1472x576 1472x640 1472x704 1536x512 1536x576 1536x640""".split()
)

RENDERING_SPEEDS: tuple[str, ...] = ("FLASH", "TURBO", "BALANCED", "DEFAULT", "QUALITY")
MAGIC_PROMPTS: tuple[str, ...] = ("AUTO", "ON", "OFF")
STYLE_TYPES: tuple[str, ...] = (
    "AUTO",
    "GENERAL",
    "REALISTIC",
    "DESIGN",
    "CUSTOM",
    "FICTION",
    "STYLIZED",
)

STYLE_PRESETS: tuple[str, ...] = tuple(
    """80S_ILLUSTRATION 90S_NOSTALGIA ABSTRACT_ORGANIC ANALOG_NOSTALGIA ART_BRUT ART_DECO ART_POSTER
    AURA AVANT_GARDE BAUHAUS BLUEPRINT BLURRY_MOTION BRIGHT_ART C4D_CARTOON CHILDRENS_BOOK COLLAGE
    COLORING_BOOK_I COLORING_BOOK_II CUBISM DARK_AURA DOODLE DOUBLE_EXPOSURE DRAMATIC_CINEMA EDITORIAL
    EMOTIONAL_MINIMAL ETHEREAL_PARTY EXPIRED_FILM FLAT_ART FLAT_VECTOR FOREST_REVERIE GEO_MINIMALIST
    GLASS_PRISM GOLDEN_HOUR GRAFFITI_I GRAFFITI_II HALFTONE_PRINT HIGH_CONTRAST HIPPIE_ERA ICONIC
    JAPANDI_FUSION JAZZY LONG_EXPOSURE MAGAZINE_EDITORIAL MINIMAL_ILLUSTRATION MIXED_MEDIA MONOCHROME
    NIGHTLIFE OIL_PAINTING OLD_CARTOONS PAINT_GESTURE POP_ART RETRO_ETCHING RIVIERA_POP SPOTLIGHT_80S
    STYLIZED_RED SURREAL_COLLAGE TRAVEL_POSTER VINTAGE_GEO VINTAGE_POSTER WATERCOLOR WEIRD
    WOODBLOCK_PRINT""".split()
)

PALETTE_PRESETS: tuple[str, ...] = (
    "EMBER",
    "FRESH",
    "JUNGLE",
    "MAGIC",
    "MELON",
    "MOSAIC",
    "PASTEL",
    "ULTRAMARINE",
)

MAX_SEED = 2147483647
MAX_NUM_IMAGES = 8
MAX_STYLE_REFS = 4  # our cap; the API caps style references only by total size
MAX_REFS_BYTES = 10 * 1000 * 1000  # style reference images together (MB as the API counts)
MAX_IMAGE_BYTES = 10 * 1000 * 1000  # the backend's per-image limit (the stricter 10MB of the spec)

# --- Legacy /remix -------------------------------------------------------------------------
LEGACY_MODELS: tuple[str, ...] = (
    "V_1",
    "V_1_TURBO",
    "V_2",
    "V_2_TURBO",
    "V_2A",
    "V_2A_TURBO",
    "V_3",
    "AUTO",
)
LEGACY_NO_PALETTE: frozenset[str] = frozenset({"V_1", "V_1_TURBO", "V_2A", "V_2A_TURBO"})
LEGACY_NEGATIVE_OK: frozenset[str] = frozenset({"V_1", "V_1_TURBO", "V_2", "V_2_TURBO"})
LEGACY_STYLE_TYPES: tuple[str, ...] = (
    "AUTO", "GENERAL", "FICTION", "REALISTIC", "DESIGN", "RENDER_3D", "ANIME", "CUSTOM", "STYLIZED",
)  # fmt: skip
LEGACY_ASPECT_RATIOS: tuple[str, ...] = (
    "10x16",
    "16x10",
    "9x16",
    "16x9",
    "3x2",
    "2x3",
    "4x3",
    "3x4",
    "1x1",
    "1x3",
    "3x1",
)  # fmt: skip  (sent as ASPECT_W_H)
LEGACY_RESOLUTIONS: tuple[str, ...] = tuple(
    """512x1536 576x1408 576x1472 576x1536 640x1024 640x1344 640x1408 640x1472 640x1536 704x1152
    704x1216 704x1280 704x1344 704x1408 704x1472 720x1280 736x1312 768x1024 768x1088 768x1152
    768x1216 768x1232 768x1280 768x1344 832x960 832x1024 832x1088 832x1152 832x1216 832x1248
    864x1152 896x960 896x1024 896x1088 896x1120 896x1152 960x832 960x896 960x1024 960x1088
    1024x640 1024x768 1024x832 1024x896 1024x960 1024x1024 1088x768 1088x832 1088x896 1088x960
    1120x896 1152x704 1152x768 1152x832 1152x864 1152x896 1216x704 1216x768 1216x832 1232x768
    1248x832 1280x704 1280x720 1280x768 1280x800 1312x736 1344x640 1344x704 1344x768 1408x576
    1408x640 1408x704 1472x576 1472x640 1472x704 1536x512 1536x576 1536x640""".split()
)  # (sent as RESOLUTION_W_H)

# --- The resellers' pages: the synchronous edit endpoint (`POST /ideogram/edit`, flat multipart)
# and the task proxy's legacy body (`POST /ideogram/remix`, `image_request` + `image_file`) ---------
# Both list the same models and style types, those of Ideogram 2.0 and before; nothing newer is sent.
RESELLER_MODELS: tuple[str, ...] = ("V_1", "V_1_TURBO", "V_2", "V_2_TURBO")
RESELLER_STYLE_TYPES: tuple[str, ...] = (
    "AUTO", "GENERAL", "REALISTIC", "DESIGN", "RENDER_3D", "ANIME",
)  # fmt: skip
EDIT_MODELS = TASK_LEGACY_MODELS = RESELLER_MODELS
EDIT_STYLE_TYPES = TASK_LEGACY_STYLE_TYPES = RESELLER_STYLE_TYPES

# --- Runware imageInference ----------------------------------------------------------------
RUNWARE_REMIX_MODELS: tuple[str, ...] = (
    "ideogram:1@2",
    "ideogram:2@2",
    "ideogram:3@2",
    "ideogram:4@2",
)
RUNWARE_V1_SIZES: tuple[str, ...] = (
    "768x1232", "1232x768", "720x1280", "1280x720", "1152x768", "832x1248",
    "1024x768", "768x1024", "1024x1024", "512x1536", "1536x512",
)  # fmt: skip
_RUNWARE_V2_EXCLUDED = {"1024x768", "1152x768", "1280x800", "768x1024", "768x1152"}
RUNWARE_V2_SIZES: tuple[str, ...] = tuple(
    r for r in LEGACY_RESOLUTIONS if r not in _RUNWARE_V2_EXCLUDED
)
RUNWARE_SIZES: dict[str, tuple[str, ...]] = {
    "ideogram:1@2": RUNWARE_V1_SIZES,
    "ideogram:2@2": RUNWARE_V2_SIZES,
    "ideogram:3@2": RUNWARE_V2_SIZES,
    "ideogram:4@2": RESOLUTIONS,
}
RUNWARE_RENDERING_SPEEDS: tuple[str, ...] = ("TURBO", "DEFAULT", "QUALITY")


def ratio_value(aspect_ratio: str) -> float:
    """Width over height of an aspect ratio written ``WxH`` (``16x9`` -> 1.777…)."""
    w, h = aspect_ratio.split("x")
    return int(w) / int(h)
