"""The README's front matter is the Space's configuration: it must parse, name a ZeroGPU Python, and
preload every file the default models' loaders read, so that a restart downloads nothing."""

from __future__ import annotations

from pathlib import Path

import yaml
from open_clip.constants import HF_SAFE_WEIGHTS_NAME

from conftest import REPO
from visual_search.config import DEFAULT_CAPTION_MODEL, DEFAULT_CLIP_MODEL, DEFAULT_TEXT_MODEL

# What a model folder holds that no loader reads
NOT_READ = {".gitattributes", "README.md", "data_config.json"}


def _front_matter() -> dict:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def _preloaded() -> dict[str, set[str]]:
    out = {}
    for entry in _front_matter()["preload_from_hub"]:
        repo, _, files = entry.partition(" ")
        out[repo] = set(files.split(",")) if files else set()
    return out


def test_front_matter_names_a_zerogpu_python_and_the_pinned_gradio():
    meta = _front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert str(meta["python_version"]) == "3.12"  # ZeroGPU runs 3.10 or 3.12
    pinned = {line.split("==")[0]: line.split("==")[1].split()[0]
              for line in (REPO / "requirements.txt").read_text().splitlines() if "==" in line}
    assert meta["sdk_version"] == pinned["gradio"]
    assert set(_preloaded()) <= set(meta["models"])


def test_every_file_the_text_model_reads_is_preloaded(minilm):
    shipped = {str(p.relative_to(minilm)) for p in Path(minilm).rglob("*") if p.is_file()} - NOT_READ
    assert DEFAULT_TEXT_MODEL == "sentence-transformers/all-MiniLM-L6-v2"  # the model the package ships
    assert _preloaded()[DEFAULT_TEXT_MODEL] == shipped


def test_clip_and_blip_weights_and_configs_are_preloaded():
    preloaded = _preloaded()
    clip_repo = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"  # open_clip's hf_hub for ViT-B-32 laion2b_s34b_b79k
    assert DEFAULT_CLIP_MODEL == "ViT-B-32" and HF_SAFE_WEIGHTS_NAME in preloaded[clip_repo]
    blip = preloaded[DEFAULT_CAPTION_MODEL]
    assert {"config.json", "preprocessor_config.json", "tokenizer_config.json", "vocab.txt"} <= blip
    assert blip & {"model.safetensors", "pytorch_model.bin"}
