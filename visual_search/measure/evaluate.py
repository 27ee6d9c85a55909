"""`python -m visual_search evaluate IMAGES CAPTIONS`: how often does the right image come first?

Protocol: the images are indexed in a scratch data dir (the user's index is never touched); every
reference caption is a query whose one correct answer is its own image. Ranks are exact over the
whole set: full score matrices are computed from the vectors the engine stored and the engine's
own encoders, through `rank.relevance` / `rank.hybrid` - the functions the search uses - so
the figures measure what users get (the search itself re-scores only per-channel top candidates).

`--reference-captions` indexes one held-out human caption per image instead of the generated one
and queries with the others: stage 1 is then as good as a person, so the caption channel's figure
is the upper bound of captioning and a measurement of stages 2-4 alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..stages import rank
from .caption_files import FORMATS, read_captions
from ..config import Settings
from ..engine import SearchEngine
from ..library.edits import MAX_CAPTION_CHARS
from ..errors import InvalidQuery, VisualSearchError
from .query_set import format_table, read_query_set, run_query_set
from .metrics import DISTRIBUTION_COLUMNS, distribution, ranks_of_correct, summarize
from ..library.progress import progress_bar
from ..stages.query import check_alpha, clean_text
from ..stages.store import CAPTION, VISUAL

DEFAULT_ALPHAS = (0.25, 0.5, 0.75)
# Suggested calibration: relevance 0 above this share of non-matching pairs, 1 for the best matches.
FLOOR_PERCENTILE = 95  # of incorrect-pair cosines
CEILING_PERCENTILE = 90  # of correct-pair cosines
QUERY_CHUNK = 256  # queries scored at once (a chunk x images matrix per channel)
MAX_INCORRECT_SAMPLES = 2_000_000  # incorrect-pair cosines kept for the distribution
VECTOR_CHUNK = 1000  # ids per store read
REFERENCE = "reference-captions"


class PendingCaption:
    """Captioner stand-in for --reference-captions: the real caption is set right after indexing."""

    identity = REFERENCE

    def caption(self, images) -> list[str]:
        return ["(reference caption pending)"] * len(images)


@dataclass
class Gallery:
    ids: list[str]  # unique indexed images, the columns of every score matrix
    captions: list[list[str]]  # reference captions per image, file order
    skipped: dict[str, int]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", help="folder of the images the caption file names")
    p.add_argument("captions", help="caption file: CSV image,caption; Flickr30k results.csv; Flickr8k token file; "
                                    "COCO captions JSON")
    p.add_argument("--format", choices=FORMATS, default="auto", help="caption file format (default: from content)")
    p.add_argument("--reference-captions", action="store_true",
                   help="index one held-out human caption per image instead of a generated one, query with the rest")
    p.add_argument("--alphas", default=",".join(f"{a:g}" for a in DEFAULT_ALPHAS),
                   help="hybrid weights to report, comma-separated (default 0.25,0.5,0.75)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images of the caption file")
    p.add_argument("--data-dir", default=None,
                   help="keep the evaluation index here (re-runs skip captioning); default: a temporary dir. "
                        "Use a dir of its own, never your search index")
    p.add_argument("--csv", default="evaluations.csv", help="append a row of results here (default ./evaluations.csv)")
    p.add_argument("--no-csv", action="store_true", help="do not append to the CSV file")
    p.add_argument("--skip-malformed", action="store_true", help="leave out caption lines that cannot be read")
    p.add_argument("--queries", default=None,
                   help="also run a labelled query set (CSV query,kind,relevant; docs/sample_queries.csv) through "
                        "the search at caption weight 1 and the default cut-off, and print what it shows")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def run(args: argparse.Namespace) -> int:
    alphas = _parse_alphas(args.alphas)
    captions, bad_lines = read_captions(args.captions, args.format, args.skip_malformed)
    if bad_lines:
        print(f"skipped {len(bad_lines)} malformed caption lines ({', '.join(bad_lines[:5])}"
              f"{', ...' if len(bad_lines) > 5 else ''})", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="vs-evaluate-") as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tmp)
        if args.reference_captions and args.data_dir:
            data_dir = data_dir / REFERENCE  # never mixes with generated captions kept in the same dir
        # chroma_url=None: a configured Chroma server holds the user's index; evaluation stays local.
        settings = Settings.from_env(data_dir=data_dir, chroma_url=None)
        engine = SearchEngine(settings, captioner=PendingCaption() if args.reference_captions else None)
        result = evaluate(engine, Path(args.images), captions, args.reference_captions, alphas, args.limit)
        if args.queries:
            result["query_set"] = run_query_set(engine, read_query_set(args.queries))
            result["query_set_cut_off"] = settings.min_relevance
    result["skipped"]["malformed_lines"] = len(bad_lines)
    result["captions_file"] = str(args.captions)
    if not args.no_csv:
        append_csv(Path(args.csv), csv_row(result, args.images))
    print(json.dumps(result, ensure_ascii=False) if args.json else format_report(result))
    return 0


def _parse_alphas(text: str) -> list[float]:
    try:
        return [check_alpha(float(a)) for a in text.split(",") if a.strip()]
    except (ValueError, InvalidQuery):
        raise InvalidQuery(f"--alphas takes numbers from 0 to 1 separated by commas, got {text!r}") from None


def evaluate(engine: SearchEngine, images_dir: Path, captions: dict[str, list[str]], reference: bool,
             alphas: list[float], limit: int | None = None) -> dict:
    t0 = time.perf_counter()
    gallery = index_gallery(engine, images_dir, captions, limit)
    if reference:
        for image_id, texts in zip(gallery.ids, gallery.captions):
            record = engine.get(image_id)
            if not (record.caption_edited and record.caption == texts[0][:MAX_CAPTION_CHARS]):  # a rerun set it
                engine.set_caption(image_id, texts[0][:MAX_CAPTION_CHARS])
    t_index = time.perf_counter() - t0
    queries, truth, dropped = _queries(gallery, reference, engine.settings.max_query_chars)
    if not queries:
        need = "at least two captions per image" if reference else "at least one caption per image"
        raise VisualSearchError(f"no queries to evaluate: --reference-captions needs {need}")
    result = score(engine, gallery.ids, queries, truth, alphas)
    result.update(
        mode=REFERENCE if reference else "generated",
        models={"captions": REFERENCE if reference else engine.settings.caption_model,  # no load just for a name
                "text": engine.text_encoder.identity, "clip": engine.clip.identity},
        skipped={**gallery.skipped, "queries": dropped},
        seconds={"index": round(t_index, 1), "score": round(time.perf_counter() - t0 - t_index, 1)},
    )
    return result


def index_gallery(engine: SearchEngine, images_dir: Path, captions: dict[str, list[str]], limit: int | None) -> Gallery:
    """Index the captioned images found in `images_dir`; group captions by stored image id."""
    if not images_dir.is_dir():
        raise VisualSearchError(f"image folder not found: {images_dir}")
    by_name: dict[str, Path] | None = None
    paths: dict[str, Path] = {}
    missing = 0
    for name in captions:
        path = images_dir / name
        if not path.is_file():
            if by_name is None:  # names without their folder (COCO's file_name): look up by file name
                by_name = {p.name: p for p in sorted(images_dir.rglob("*")) if p.is_file()}
            path = by_name.get(Path(name).name)
        if path is None:
            missing += 1
        else:
            paths[name] = path
        if limit and len(paths) >= limit:
            break
    if not paths:
        raise VisualSearchError(f"none of the images named in the caption file is in {images_dir}")
    if missing:
        print(f"{missing} images named in the caption file are not in {images_dir}; left out", file=sys.stderr)
    report = engine.index_paths(list(paths.values()), progress=progress_bar("indexing"))
    id_of = {a.path: a.id for a in report.added} | {d.path: d.id for d in report.duplicates}
    for f in report.failed:
        print(f"rejected {f.path}: {f.error}", file=sys.stderr)
    grouped: dict[str, list[str]] = {}
    for name, path in paths.items():
        if str(path) in id_of:
            grouped.setdefault(id_of[str(path)], []).extend(captions[name])
    skipped = {"missing_images": missing, "rejected_images": len(report.failed)}
    return Gallery(list(grouped), list(grouped.values()), skipped)


def _queries(gallery: Gallery, reference: bool, max_chars: int) -> tuple[list[str], np.ndarray, int]:
    queries, truth, dropped = [], [], 0
    for column, texts in enumerate(gallery.captions):
        for text in texts[1:] if reference else texts:
            try:
                queries.append(clean_text(text, max_chars))  # the search cleans queries the same way
                truth.append(column)
            except InvalidQuery:
                dropped += 1
    return queries, np.asarray(truth, dtype=np.int64), dropped


def _matrix(engine: SearchEngine, kind: str, ids: list[str]) -> np.ndarray:
    got: dict[str, np.ndarray] = {}
    for lo in range(0, len(ids), VECTOR_CHUNK):
        got.update(engine.store.embeddings(kind, ids[lo : lo + VECTOR_CHUNK]))
    return np.stack([got[i] for i in ids])


def score(engine: SearchEngine, ids: list[str], queries: list[str], truth: np.ndarray, alphas: list[float]) -> dict:
    """Exact ranks of every query's image on each channel, and the cosine distributions."""
    caption_m, visual_m = _matrix(engine, CAPTION, ids), _matrix(engine, VISUAL, ids)
    cap_cal, vis_cal = engine.text_encoder.calibration, rank.CLIP_TEXT_IMAGE
    words = engine.store.words  # the word channel (stages/words.py), fused as the search fuses it
    names = (["caption", "visual"] + [f"hybrid@{a:g}" for a in alphas]
             + ([f"hybrid@{a:g}+words" for a in alphas] if words is not None else []))
    ranks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    cosines = {c: {"correct": [], "incorrect": []} for c in ("caption", "visual")}
    per_query = max(1, MAX_INCORRECT_SAMPLES // len(queries))
    rng = np.random.default_rng(0)
    for lo in range(0, len(queries), QUERY_CHUNK):
        batch, right = queries[lo : lo + QUERY_CHUNK], truth[lo : lo + QUERY_CHUNK]
        caption_q, visual_q = engine.queries.encode_many(batch)
        cap_cos, vis_cos = rank.cosine_matrix(caption_q, caption_m), rank.cosine_matrix(visual_q, visual_m)
        cap_rel = np.vstack([rank.relevance(row, engine.queries.calibration_for(text))  # by query length
                             for row, text in zip(cap_cos, batch)])
        vis_rel = rank.relevance(vis_cos, vis_cal)
        # Ties in relevance (clipped at 0 or 1) fall back to cosine order, as the search's candidate order does.
        ranks["caption"].append(ranks_of_correct(cap_rel, right, cap_cos))
        ranks["visual"].append(ranks_of_correct(vis_rel, right, vis_cos))
        word = _word_matrix(words, batch, ids) if words is not None else None
        for a in alphas:
            total = rank.hybrid(cap_rel, vis_rel, a)
            ranks[f"hybrid@{a:g}"].append(ranks_of_correct(total, right, cap_cos if a > 0 else vis_cos))
            if word is not None:
                ranks[f"hybrid@{a:g}+words"].append(
                    ranks_of_correct(rank.fuse(total, word), right, cap_cos if a > 0 else vis_cos))
        for channel, cos in (("caption", cap_cos), ("visual", vis_cos)):
            _collect(cosines[channel], cos, right, per_query, rng)
    result: dict = {"n_images": len(ids), "n_queries": len(queries)}
    result["channels"] = {n: summarize(np.concatenate(r)) for n, r in ranks.items()}
    result["distributions"] = {
        c: {k: distribution(np.concatenate(v)) for k, v in d.items()} for c, d in cosines.items()
    }
    result["calibration"] = {
        "caption": _calibration(cosines["caption"], cap_cal),
        "visual": _calibration(cosines["visual"], vis_cal),
    }
    return result


def _word_matrix(words, queries: list[str], ids: list[str]) -> np.ndarray:
    """The word channel's relevance of every image for each query, (n_queries, n_images)."""
    column = {image_id: j for j, image_id in enumerate(ids)}
    out = np.zeros((len(queries), len(ids)))
    for i, text in enumerate(queries):
        found = words.lookup(text)
        for image_id, w in (found.scores.items() if found is not None else ()):
            if image_id in column:
                out[i, column[image_id]] = w
    return out


def _collect(into: dict[str, list], cos: np.ndarray, right: np.ndarray, per_query: int, rng) -> None:
    rows = np.arange(len(right))
    into["correct"].append(cos[rows, right])
    n = cos.shape[1]
    if n - 1 <= per_query:
        mask = np.ones_like(cos, dtype=bool)
        mask[rows, right] = False
        into["incorrect"].append(cos[mask])
    else:  # a uniform sample of the other images
        cols = rng.integers(0, n, size=(len(right), per_query))
        keep = cols != right[:, None]
        into["incorrect"].append(cos[np.repeat(rows, per_query).reshape(cols.shape)[keep], cols[keep]])


def _calibration(cos: dict[str, list], current: rank.Calibration) -> dict:
    correct, incorrect = np.concatenate(cos["correct"]), np.concatenate(cos["incorrect"])
    floor = float(np.percentile(incorrect, FLOOR_PERCENTILE)) if incorrect.size else None
    ceiling = float(np.percentile(correct, CEILING_PERCENTILE)) if correct.size else None
    suggested = {"floor": round(floor, 3), "ceiling": round(ceiling, 3)} if (
        floor is not None and ceiling is not None and ceiling > floor) else None
    return {
        "constant": _constant_name(current),
        "current": {"floor": current.floor, "ceiling": current.ceiling},
        "suggested": suggested,  # None: the channel does not separate matches from non-matches here
        "correct_at_zero": float(np.mean(correct <= current.floor)) if correct.size else 0.0,
        "incorrect_above_zero": float(np.mean(incorrect > current.floor)) if incorrect.size else 0.0,
    }


def _constant_name(cal: rank.Calibration) -> str:
    return next((n for n, v in vars(rank).items() if v is cal), "custom")


# ---- output ----------------------------------------------------------------------------------------
def format_report(r: dict) -> str:
    m = r["models"]
    lines = [
        f"{r['n_images']} images, {r['n_queries']} queries; indexed captions: "
        + ("one held-out human caption per image" if r["mode"] == REFERENCE else "generated"),
        f"captions: {m['captions']}  |  text model: {m['text']}  |  CLIP: {m['clip']}",
        "",
        f"{'channel':<14}{'R@1':>8}{'R@5':>8}{'R@10':>8}{'MRR':>8}{'median rank':>13}",
    ]
    for name, s in r["channels"].items():
        lines.append(f"{name:<14}{s['recall@1']:>8.3f}{s['recall@5']:>8.3f}{s['recall@10']:>8.3f}"
                     f"{s['mrr']:>8.3f}{s['median_rank']:>13g}")
    lines += ["", "Cosine of correct vs incorrect (query, image) pairs",
              f"{'channel':<10}{'pairs':<11}{'n':>9}" + "".join(
                  f"{h:>7}" for h in DISTRIBUTION_COLUMNS)]
    for channel, d in r["distributions"].items():
        for kind, s in d.items():
            if s["n"]:
                lines.append(f"{channel:<10}{kind:<11}{s['n']:>9}" + "".join(
                    f"{s[k]:>7.3f}" for k in DISTRIBUTION_COLUMNS))
    lines += ["", f"Calibration (cosine -> relevance): suggested floor = p{FLOOR_PERCENTILE} of incorrect, "
                  f"ceiling = p{CEILING_PERCENTILE} of correct"]
    for channel, c in r["calibration"].items():
        cur, sug = c["current"], c["suggested"]
        suggestion = (f"suggested floor {sug['floor']:.2f} ceiling {sug['ceiling']:.2f}" if sug
                      else "no suggestion: correct pairs do not score above incorrect ones")
        lines.append(f"  {channel:<8} rank.{c['constant']}: floor {cur['floor']:.2f} ceiling {cur['ceiling']:.2f}"
                     f"  ->  {suggestion}  ({c['correct_at_zero']:.0%} of correct pairs now at relevance 0, "
                     f"{c['incorrect_above_zero']:.0%} of incorrect above 0)")
    if "query_set" in r:
        lines += ["", format_table(r["query_set"], 1.0, r["query_set_cut_off"])]
    skipped = {k: v for k, v in r["skipped"].items() if v}
    if skipped:
        lines.append("left out: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in skipped.items()))
    return "\n".join(lines)


def csv_row(r: dict, images: str) -> dict[str, object]:
    row: dict[str, object] = {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": r["mode"], "images": images, "captions_file": r.get("captions_file", ""),
        "caption_model": r["models"]["captions"], "text_model": r["models"]["text"], "clip_model": r["models"]["clip"],
        "n_images": r["n_images"], "n_queries": r["n_queries"],
    }
    for channel, s in r["channels"].items():
        row.update({f"{channel} {k}": round(v, 4) for k, v in s.items()})
    return row


def append_csv(path: Path, row: dict[str, object]) -> None:
    """Append one run; when the columns changed (other alphas), rewrite the file with all columns."""
    header, rows, rewrite = list(row), [], not path.exists() or path.stat().st_size == 0
    if not rewrite:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            old = list(reader.fieldnames or [])
            if old != header:
                rows, rewrite = list(reader), True
                header = old + [k for k in header if k not in old]
    with open(path, "w" if rewrite else "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        if rewrite:
            writer.writeheader()
            writer.writerows(rows)
        writer.writerow(row)
