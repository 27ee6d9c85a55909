"""What the page shares with the outside: the search in its URL, and results as plain data for
programs (the `/search_results` endpoint)."""

from __future__ import annotations

import inspect
import json
import os
from typing import Callable, Mapping, Sequence
from urllib.parse import quote

import gradio as gr
from gradio import route_utils

from ..records import SearchResult
from ..search.filters import CLAUSES
from ..search.searcher import SORTS
from .serving import IMAGE_ROUTE

FILTER_KEYS = [c.key for c in CLAUSES]  # each clause's URL parameter is its key (search/filters.py)

# Runs in the browser after a search: the query, k, weight, cut-off, sort and every filter clause go
# into the address bar (no reload), so the link can be shared and a reload keeps the search.
SHOW_IN_URL = """(q, k, alpha, min_relevance, sort, ...clauses) => {
  const url = new URL(window.location.href);
  if (q && q.trim()) { url.searchParams.set('q', q); } else { url.searchParams.delete('q'); }
  url.searchParams.set('k', k);
  url.searchParams.set('alpha', alpha);
  url.searchParams.set('min_relevance', min_relevance);
  url.searchParams.set('sort', sort);
  %s.forEach((key, i) => {
    const v = clauses[i];
    if (v !== null && v !== undefined && String(v).trim()) { url.searchParams.set(key, v); } else { url.searchParams.delete(key); }
  });
  window.history.replaceState(null, '', url);
  return [];
}""" % json.dumps(FILTER_KEYS)
MAX_PARAM_CHARS = 200


def link_params(params: Mapping[str, str], max_k: int, default_alpha: float, default_cut_off: float
                ) -> tuple[str, int, float, float, str, list[str]] | None:
    """(query, k, alpha, min_relevance, sort, filter clause values) from a link's
    `?q=&k=&alpha=&min_relevance=&sort=&after=...`, None without a query. Out-of-range or malformed k,
    alpha, cut-off and sort fall back to the defaults: a hand-edited link still opens a search; a
    malformed filter value is the search's to refuse, with its message."""
    query = (params.get("q") or "").strip()
    if not query:
        return None
    k = _number(params.get("k"), int, 8)
    alpha = _number(params.get("alpha"), float, default_alpha)
    cut = _number(params.get("min_relevance"), float, default_cut_off)
    sort = params.get("sort") if params.get("sort") in SORTS else SORTS[0]
    clauses = [(params.get(key) or "")[:MAX_PARAM_CHARS] for key in FILTER_KEYS]
    return (query, k if 1 <= k <= max_k else min(8, max_k), alpha if 0.0 <= alpha <= 1.0 else default_alpha,
            cut if 0.0 <= cut <= 1.0 else default_cut_off, str(sort), clauses)


def with_clause_params(fn: Callable[..., list[dict]]) -> Callable[..., list[dict]]:
    """`fn(..., clauses: dict, request)` as an endpoint with one text argument per filter clause (named
    by its key, "" = no clause), after fn's own, so a program can filter as the page does and a new
    clause in search/filters.py reaches the API by itself. gradio reads the signature and hints."""
    own = [p for p in inspect.signature(fn).parameters.values() if p.name not in ("clauses", "request")]
    hints = {**fn.__annotations__}
    params = [p.replace(annotation=_hint(hints.get(p.name))) for p in own]
    params += [inspect.Parameter(key, inspect.Parameter.POSITIONAL_OR_KEYWORD, default="", annotation=str)
               for key in FILTER_KEYS]
    params.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                    annotation=gr.Request))
    signature = inspect.Signature(params, return_annotation=list[dict])

    def endpoint(*args: object, **kwargs: object) -> list[dict]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        given = dict(bound.arguments)
        clauses = {key: str(given.pop(key) or "") for key in FILTER_KEYS}
        return fn(**given, clauses=clauses)

    endpoint.__signature__ = signature  # type: ignore[attr-defined]
    endpoint.__annotations__ = {p.name: p.annotation for p in params} | {"return": list[dict]}
    endpoint.__name__, endpoint.__doc__ = fn.__name__, fn.__doc__
    return endpoint


_HINTS = {"str": str, "int": int, "float": float}


def _hint(hint: object) -> object:
    """A real type for gradio from an annotation that `from __future__ import annotations` left as text."""
    return _HINTS.get(hint, hint) if isinstance(hint, str) else hint


def _number(raw: str | None, kind: type, default):
    try:
        return kind(float(raw)) if raw not in (None, "") else default
    except ValueError:
        return default


def result_rows(results: Sequence[SearchResult], request: gr.Request | None) -> list[dict]:
    """One plain dict per result; `image_url` is absolute when the request says where the app is."""
    root = _root_url(request)
    return [
        {"id": r.record.id, "filename": r.record.filename, "caption": r.record.caption,
         "relevance": round(r.relevance, 4), "caption_score": round(r.caption_score, 4),
         "visual_score": round(r.visual_score, 4), "word_score": round(r.word_score, 4),
         "added_at": r.record.added_at, "taken_at": r.record.taken_at, "place": r.record.place,
         "camera": r.record.camera, "ocr_text": r.record.ocr_text, "tags": list(r.record.tags),
         "matched": [m.to_dict() for m in r.matched],
         "image_url": f"{root}{IMAGE_ROUTE}{quote(os.path.basename(r.record.path))}"}
        for r in results
    ]


def _root_url(request: gr.Request | None) -> str:
    """The app's public root (proxy headers honoured), or '' when unknown."""
    raw = getattr(request, "request", None) if request is not None else None
    if raw is None:
        return ""
    path = raw.url.path
    return route_utils.get_root_url(raw, path[path.find("/gradio_api"):] if "/gradio_api" in path else path, None)
