"""What the page shares with the outside: the search in its URL, and results as plain data for
programs (the `/search_results` endpoint)."""

from __future__ import annotations

import json
from typing import Mapping, Sequence
from urllib.parse import quote

import gradio as gr
from gradio import route_utils

from ..records import SearchResult
from ..search.filters import CLAUSES

FILTER_KEYS = [c.key for c in CLAUSES]  # each clause's URL parameter is its key (search/filters.py)

# Runs in the browser after a search: the query, k, weight and every filter clause go into the
# address bar (no reload), so the link can be shared and a reload keeps the search.
SHOW_IN_URL = """(q, k, alpha, ...clauses) => {
  const url = new URL(window.location.href);
  if (q && q.trim()) { url.searchParams.set('q', q); } else { url.searchParams.delete('q'); }
  url.searchParams.set('k', k);
  url.searchParams.set('alpha', alpha);
  %s.forEach((key, i) => {
    const v = clauses[i];
    if (v !== null && v !== undefined && String(v).trim()) { url.searchParams.set(key, v); } else { url.searchParams.delete(key); }
  });
  window.history.replaceState(null, '', url);
  return [];
}""" % json.dumps(FILTER_KEYS)
MAX_PARAM_CHARS = 200


def link_params(params: Mapping[str, str], max_k: int, default_alpha: float
                ) -> tuple[str, int, float, list[str]] | None:
    """(query, k, alpha, filter clause values) from a link's `?q=&k=&alpha=&after=...`, None without a
    query. Out-of-range or malformed k and alpha fall back to the defaults: a hand-edited link still
    opens a search; a malformed filter value is the search's to refuse, with its message."""
    query = (params.get("q") or "").strip()
    if not query:
        return None
    k = _number(params.get("k"), int, 8)
    alpha = _number(params.get("alpha"), float, default_alpha)
    clauses = [(params.get(key) or "")[:MAX_PARAM_CHARS] for key in FILTER_KEYS]
    return query, k if 1 <= k <= max_k else min(8, max_k), alpha if 0.0 <= alpha <= 1.0 else default_alpha, clauses


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
         "visual_score": round(r.visual_score, 4), "added_at": r.record.added_at,
         "image_url": f"{root}/gradio_api/file={quote(r.record.path)}"}
        for r in results
    ]


def _root_url(request: gr.Request | None) -> str:
    """The app's public root (proxy headers honoured), or '' when unknown."""
    raw = getattr(request, "request", None) if request is not None else None
    if raw is None:
        return ""
    path = raw.url.path
    return route_utils.get_root_url(raw, path[path.find("/gradio_api"):] if "/gradio_api" in path else path, None)
