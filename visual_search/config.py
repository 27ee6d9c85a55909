"""Configuration from environment variables, read once into a frozen dataclass.

Every `VS_*` variable and its default lives here and nowhere else; the README's
configuration table mirrors this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_CAPTION_MODEL = "Salesforce/blip-image-captioning-base"
DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "laion2b_s34b_b79k"
# The value of VS_TEXT_MODEL that selects CLIP's own text tower for the caption channel.
CLIP_TEXT_MODEL = "clip"
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # VS_PRECISION: the image models' precision (models/precision.py)
BACKENDS = ("auto", "onnx", "torch")  # VS_BACKEND: what runs the query encoders (models/backend.py)
OCR_MODES = ("auto", "on", "off")  # VS_OCR: read the words in each picture (stages/ocr.py)


def on_zero_gpu() -> bool:
    """A Hugging Face ZeroGPU Space (the `spaces` package reads the same variable)."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be on or off (1/0, true/false), got {raw!r}")


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _env(name, default).lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a deployment may tune. Build with `Settings.from_env()`."""

    data_dir: Path = Path("data")
    caption_model: str = DEFAULT_CAPTION_MODEL
    text_model: str = DEFAULT_TEXT_MODEL
    clip_model: str = DEFAULT_CLIP_MODEL
    clip_pretrained: str | None = DEFAULT_CLIP_PRETRAINED
    # The family of each model (models/registry.py says which class builds it). The text family
    # "clip" (also chosen by VS_TEXT_MODEL=clip) embeds captions with CLIP's own text tower.
    caption_family: str = "blip"
    text_family: str = ""  # "": "clip" when text_model is "clip", else "sentence-transformers"
    visual_family: str = "open_clip"
    device: str | None = None  # None: cuda when available, else cpu
    # Where queries are encoded. None: the same device as the models. On ZeroGPU "cpu": a search
    # then spends no GPU quota and waits for no GPU hand-over (README "Deploy").
    query_device: str | None = None
    index_dir: Path | None = None  # the Chroma folder; None: data_dir / "chroma"
    backend: str = "auto"  # query encoders: auto = ONNX Runtime once its export verified, else torch
    onnx_dir: Path | None = None  # verified ONNX exports; None: data_dir/onnx
    chroma_url: str | None = None  # None: embedded PersistentClient under data_dir
    max_file_mb: float = 20.0
    max_pixels: int = 40_000_000  # ~ 8000 x 5000; refused before the pixels are decoded
    caption_max_tokens: int = 30
    caption_batch: int = 0  # 0: by device (models/device.py: 2 on a CPU, a large batch on a GPU)
    precision: str = "auto"  # auto: bf16 or fp16 on CUDA where it verifies against fp32, else fp32
    # Read the words in each new picture (stages/ocr.py): auto = on when the rapidocr package is
    # installed; off = never (records keep ocr_model ""; `reindex --ocr` reads them later).
    ocr: str = "auto"
    default_alpha: float = 0.5
    max_k: int = 100
    max_query_chars: int = 1000
    min_relevance: float = 0.2  # results below it are hidden (the app can reveal them); stages/rank.py says what 0.2 means
    tag_vocabulary: Path = field(default_factory=lambda: Path(__file__).resolve().parent / "stages" / "tag_vocabulary.txt")
    sample_dir: Path = field(default_factory=lambda: Path(__file__).resolve().parent.parent / "sample_images")
    # Public demo (README "Public demo", SECURITY.md): private uploads per visitor, a read-only shared
    # collection, per-visitor caps. Default: on when running on a Hugging Face Space.
    public_demo: bool = False
    visitor_ttl_hours: float = 24.0
    visitor_max_images: int = 50
    visitor_max_mb: float = 100.0
    visitor_uploads_per_minute: int = 20
    admins: frozenset[str] = frozenset()  # Hugging Face user names allowed to curate (OAuth on Spaces)
    admin_password: str = ""  # curator password for the sign-in form elsewhere ("" : no password sign-in)
    # The key visitor ids are signed with ("": a random one kept in data_dir/.visitor-secret). Only the
    # server knows it: a visitor id read anywhere (a record, a log) cannot be presented without its signature.
    visitor_secret: str = ""
    # Under load (SECURITY.md, web/guard.py): events waiting in gradio's queue at most (always); in a
    # public demo, requests (queue joins, uploads) a minute per client address, and megabytes of
    # uploads per address an hour and in gradio's upload folder in all. 0 turns a limit off.
    queue_max: int = 64
    requests_per_minute: int = 300
    upload_mb_per_hour: float = 500.0
    uploads_tmp_max_mb: float = 2048.0

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        """Read every `VS_*` variable; keyword overrides win (used by tests and the CLI)."""
        pretrained = _env("VS_CLIP_PRETRAINED", DEFAULT_CLIP_PRETRAINED)
        settings = cls(
            data_dir=Path(_env("VS_DATA_DIR", "data")),
            caption_model=_env("VS_CAPTION_MODEL", DEFAULT_CAPTION_MODEL),
            text_model=_env("VS_TEXT_MODEL", DEFAULT_TEXT_MODEL),
            clip_model=_env("VS_CLIP_MODEL", DEFAULT_CLIP_MODEL),
            clip_pretrained=None if pretrained.lower() == "none" else pretrained,
            caption_family=_env("VS_CAPTION_FAMILY", cls.caption_family),
            text_family=os.environ.get("VS_TEXT_FAMILY", "").strip(),
            visual_family=_env("VS_VISUAL_FAMILY", cls.visual_family),
            device=os.environ.get("VS_DEVICE", "").strip() or None,
            query_device=os.environ.get("VS_QUERY_DEVICE", "").strip() or ("cpu" if on_zero_gpu() else None),
            index_dir=Path(os.environ["VS_INDEX_DIR"].strip()) if os.environ.get("VS_INDEX_DIR", "").strip() else None,
            backend=_env_choice("VS_BACKEND", "auto", BACKENDS),
            onnx_dir=Path(os.environ["VS_ONNX_DIR"].strip()) if os.environ.get("VS_ONNX_DIR", "").strip() else None,
            chroma_url=os.environ.get("VS_CHROMA_URL", "").strip() or None,
            max_file_mb=_env_float("VS_MAX_FILE_MB", cls.max_file_mb),
            max_pixels=_env_int("VS_MAX_PIXELS", cls.max_pixels),
            caption_max_tokens=_env_int("VS_CAPTION_MAX_TOKENS", cls.caption_max_tokens),
            caption_batch=_env_int("VS_CAPTION_BATCH", cls.caption_batch),
            precision=_env_choice("VS_PRECISION", cls.precision, PRECISIONS),
            ocr=_env_choice("VS_OCR", cls.ocr, OCR_MODES),
            default_alpha=_env_float("VS_ALPHA", cls.default_alpha),
            min_relevance=_env_float("VS_MIN_RELEVANCE", cls.min_relevance),
            tag_vocabulary=Path(_env("VS_TAG_VOCABULARY", str(cls().tag_vocabulary))),
            sample_dir=Path(_env("VS_SAMPLE_DIR", str(cls().sample_dir))),
            public_demo=_env_bool("VS_PUBLIC_DEMO", bool(os.environ.get("SPACE_ID", "").strip())),
            visitor_ttl_hours=_env_float("VS_VISITOR_TTL_HOURS", cls.visitor_ttl_hours),
            visitor_max_images=_env_int("VS_VISITOR_MAX_IMAGES", cls.visitor_max_images),
            visitor_max_mb=_env_float("VS_VISITOR_MAX_MB", cls.visitor_max_mb),
            visitor_uploads_per_minute=_env_int("VS_VISITOR_UPLOADS_PER_MINUTE", cls.visitor_uploads_per_minute),
            admins=frozenset(n.strip().lower() for n in os.environ.get("VS_ADMINS", "").split(",") if n.strip()),
            admin_password=os.environ.get("VS_ADMIN_PASSWORD", ""),
            visitor_secret=os.environ.get("VS_VISITOR_SECRET", "").strip(),
            queue_max=_env_int("VS_QUEUE_MAX", cls.queue_max),
            requests_per_minute=_env_int("VS_REQUESTS_PER_MINUTE", cls.requests_per_minute),
            upload_mb_per_hour=_env_float("VS_UPLOAD_MB_PER_HOUR", cls.upload_mb_per_hour),
            uploads_tmp_max_mb=_env_float("VS_UPLOADS_TMP_MAX_MB", cls.uploads_tmp_max_mb),
        )
        return replace(settings, **overrides) if overrides else settings

    def family(self, role: str) -> str:
        """The configured family of a model role: "captioner", "text" or "visual" (models/registry.py)."""
        if role == "text":
            return self.text_family or (CLIP_TEXT_MODEL if self.text_model == CLIP_TEXT_MODEL
                                        else "sentence-transformers")
        return {"captioner": self.caption_family, "visual": self.visual_family}[role]

    @property
    def clip_text_captions(self) -> bool:
        """Captions are embedded by CLIP's own text tower (the "clip" text family)."""
        return self.family("text") == CLIP_TEXT_MODEL

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def visitor_max_bytes(self) -> int:
        return int(self.visitor_max_mb * 1024 * 1024)

    @property
    def chroma_dir(self) -> Path:
        """The embedded Chroma index: VS_INDEX_DIR, else inside the data dir. Local disk suits it best."""
        return self.index_dir or self.data_dir / "chroma"

    @property
    def words_path(self) -> Path:
        """The word channel's full-text index (stages/words.py), rebuilt from the catalog when missing."""
        return self.data_dir / "words.sqlite"

    @property
    def thumbs_dir(self) -> Path:
        """Small WebP tiles, derived from the originals (visual_search/library/thumbnails.py)."""
        return self.data_dir / "thumbs"

    @property
    def onnx_cache(self) -> Path:
        """Where exported query encoders are kept (models/onnxrt/cache.py)."""
        return self.onnx_dir or self.data_dir / "onnx"

    @property
    def images_dir(self) -> Path:
        """Content-addressed originals: results display after a restart, re-indexing needs no user files."""
        return self.data_dir / "images"
