"""Why a model could not be loaded, in one sentence a person can act on.

Loaders (transformers, open_clip, huggingface_hub) fail in many ways and their messages are long
and sometimes beside the point ("make sure you don't have a local directory with the same name").
`model_load_error` walks the exception's chain for the reason that matters (no network, no such
model, a gated model, no such folder) and names the variable to point at a local copy.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelLoadError

OFFLINE = ("the Hugging Face Hub cannot be reached (no network, or HF_HUB_OFFLINE=1) and the model is not in "
           "the local cache")
_REASONS = (  # exception class name -> reason, most specific first
    ("GatedRepoError", "it is a gated model: accept its terms on the Hugging Face Hub and set HF_TOKEN"),
    ("RepositoryNotFoundError", "no model of that name is on the Hugging Face Hub (or it is private)"),
    ("RevisionNotFoundError", "the Hugging Face Hub has no such revision of it"),
    ("OfflineModeIsEnabled", OFFLINE),
    ("LocalEntryNotFoundError", OFFLINE),
    ("ConnectError", OFFLINE),
    ("ConnectTimeout", OFFLINE),
    ("ConnectionError", OFFLINE),
)


def model_load_error(what: str, model_id: str, variable: str, exc: BaseException) -> ModelLoadError:
    """`Cannot load the captioning model 'x': <why>; point VS_CAPTION_MODEL at a local folder (...)`."""
    why = _reason(model_id, exc)
    return ModelLoadError(f"Cannot load the {what} {model_id!r}: {why}; point {variable} at a local copy "
                          "(README, \"Offline use\").")


def _chain(exc: BaseException | None):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _classify(exc: BaseException) -> str | None:
    names = {type(e).__name__ for e in _chain(exc)}
    for name, reason in _REASONS:
        if name in names:
            return reason
    if any("couldn't connect" in str(e).lower() for e in _chain(exc)):
        return OFFLINE
    return None


def _looks_like_path(model_id: str) -> bool:
    return model_id.startswith(("/", "./", "../", "~")) or "\\" in model_id or model_id.count("/") > 1


def _reason(model_id: str, exc: BaseException) -> str:
    name = model_id.removeprefix("local-dir:")
    if (_looks_like_path(name) or model_id.startswith("local-dir:")) and not Path(name).expanduser().exists():
        return "there is no such folder"
    found = _classify(exc)
    if found is None and not Path(name).expanduser().exists():
        found = _probe_hub(name)  # some loaders drop the cause (BLIP's processor): ask the Hub directly
    if found is not None:
        return found
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{type(exc).__name__}: {first[:200]}"


def _probe_hub(repo_id: str) -> str | None:
    """Ask the Hub for the model's config file: its error says why the model cannot be had."""
    try:
        from huggingface_hub import hf_hub_download

        hf_hub_download(repo_id, "config.json")
    except Exception as exc:  # the Hub's typed errors, or a network error
        return _classify(exc)
    return None
