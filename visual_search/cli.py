"""`python -m visual_search ...`: parses arguments and calls the library, nothing more.

Exit codes: 0 success; 2 some inputs were rejected or the request was refused (message on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .errors import VisualSearchError
from .library.progress import progress_bar
from .search.filters import CLAUSES, SearchFilter

FILTER_KEYS = tuple(c.key for c in CLAUSES)

EXIT_REJECTED = 2


def _engine():
    from .engine import SearchEngine

    return SearchEngine()


def cmd_index(args) -> int:
    report = _engine().index_paths(args.paths, progress=progress_bar("indexing"))
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        for a in report.added:
            print(f"added      {a.id[:12]}  {a.path}  -> {a.caption}")
        for d in report.duplicates:
            print(f"duplicate  {d.id[:12]}  {d.path}")
        for f in report.failed:
            print(f"rejected   {f.path}: {f.error}", file=sys.stderr)
        for s in report.skipped:
            print(f"skipped    {s.path}: {s.reason}")
        print(f"{len(report.added)} added, {len(report.duplicates)} duplicates, "
              f"{len(report.failed)} rejected, {len(report.skipped)} skipped (not images); "
              f"{report.count} images in the index")
    return EXIT_REJECTED if report.failed else 0


def _print_results(response, as_json: bool) -> None:
    if as_json:
        print(json.dumps(response.to_dict(), ensure_ascii=False))
        return
    hidden = (f"; {response.hidden} more below relevance {response.min_relevance:.2f} (--min-relevance 0 shows them)"
              if response.hidden else "")
    if response.missing_phrases:
        print("No image holds " + " and ".join(f'"{p}"' for p in response.missing_phrases)
              + " (a quoted phrase must appear as written; leave out the quotes to search by meaning).")
        return
    if not response.results:
        print(f"No results{hidden or '.'}")
        return
    bold = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("«", "»")
    for rank, r in enumerate(response.results, response.offset + 1):
        tags = f"  [{', '.join(r.record.tags)}]" if r.record.tags else ""
        words = f", words {r.word_score:.2f}" if r.word_score else ""
        print(f"{rank:3d}. {r.relevance:.2f}  (caption {r.caption_score:.2f}, visual {r.visual_score:.2f}{words})  "
              f"{r.record.filename}  {r.record.id[:12]}  {r.record.added_at}  {r.record.caption}{tags}")
        for m in r.matched:  # why it matched, word by word
            print(f"       {m.marked(*bold)}")
    print(f"({response.elapsed_ms:.1f} ms{hidden})")


def _options(args) -> dict:
    """The result options `search` and `similar` share, as the engine's keyword arguments."""
    clauses = {key: getattr(args, key) for key in FILTER_KEYS}
    return {"offset": args.offset, "min_relevance": args.min_relevance, "sort": args.sort,
            "filter": SearchFilter.parse(**clauses)}


def _image_or_id(engine, value: str) -> tuple[bytes | str, str]:
    """An image file's bytes and name, or an indexed id as given."""
    from pathlib import Path

    from .library.intake import read_file

    target = Path(value)
    if target.is_file():
        return read_file(target, engine.settings.max_file_bytes), target.name
    return value, value


def cmd_search(args) -> int:
    engine = _engine()
    like = _image_or_id(engine, args.like)[0] if args.like else None
    _print_results(engine.search(args.query, k=args.k, alpha=args.alpha, like=like, **_options(args)), args.json)
    return 0


def cmd_similar(args) -> int:
    engine = _engine()
    image, name = _image_or_id(engine, args.image)
    _print_results(engine.similar(image, k=args.k, filename=name, **_options(args)), args.json)
    return 0


def cmd_list(args) -> int:
    records = _engine().list()
    if args.json:
        keys = ("id", "path", "caption", "width", "height", "added_at", "taken_at", "place", "camera")
        print(json.dumps([{**{k: getattr(r, k) for k in keys}, "tags": list(r.tags)} for r in records],
                         ensure_ascii=False))
    else:
        for r in records:
            tags = f"  [{', '.join(r.tags)}]" if r.tags else ""
            print(f"{r.id[:12]}  {r.width}x{r.height}  {r.added_at}  {r.filename}  {r.caption}{tags}")
        print(f"{len(records)} images")
    return 0


def cmd_remove(args) -> int:
    record = _engine().remove(args.id)
    print(f"removed {record.id[:12]} ({record.filename})")
    return 0


def cmd_caption(args) -> int:
    record = _engine().set_caption(args.id, args.text)
    print(f"{record.id[:12]}: {record.caption}")
    return 0


def cmd_text(args) -> int:
    engine = _engine()
    record = engine.set_ocr_text(args.id, args.text) if args.text is not None else engine.get(args.id)
    print(f"{record.id[:12]}: {record.ocr_text or '(no text in the picture)'}")
    return 0


def cmd_tags(args) -> int:
    engine = _engine()
    record = engine.set_tags(args.id, args.tags) if args.tags or args.clear else engine.get(args.id)
    print(f"{record.id[:12]}: {', '.join(record.tags) or '(no tags)'}")
    return 0


def cmd_reindex(args) -> int:
    if args.ocr:
        n = _engine().read_text_again(progress=progress_bar("reading text"))
        print(f"{n} images had the text in the picture read again")
        return 0
    n = _engine().reconcile(progress=progress_bar("re-indexing"), metadata=args.metadata)
    print(f"{n} images re-embedded" + ("; every file's metadata read again" if args.metadata else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m visual_search", description="Search images by describing them.")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        return sp

    sp = add("index", cmd_index, "Index image files and folders (recursively).")
    sp.add_argument("paths", nargs="+")
    sp.add_argument("--json", action="store_true")
    for name, func, help, arg in (
        ("search", cmd_search, "Search the index by a text description.", "query"),
        ("similar", cmd_similar, "Find images like an image file or an indexed id.", "image"),
    ):
        sp = add(name, func, help)
        sp.add_argument(arg)
        sp.add_argument("-k", type=int, default=10, help="number of results (default 10)")
        sp.add_argument("--json", action="store_true")
        if name == "search":
            sp.add_argument("--alpha", type=float, default=None,
                            help="caption weight in [0, 1]; 1 = captions only, 0 = CLIP only (default VS_ALPHA)")
            sp.add_argument("--like", metavar="IMAGE_OR_ID", default=None,
                            help="an image file or indexed id the words refine: 'like this, but ...'")
        sp.add_argument("--offset", type=int, default=0, help="pass over this many results (the next page)")
        sp.add_argument("--min-relevance", type=float, default=None,
                        help="hide results below this relevance in [0, 1] (default VS_MIN_RELEVANCE)")
        sp.add_argument("--sort", choices=("relevance", "newest"), default="relevance",
                        help="order of the results above the cut-off (default relevance); newest: by when "
                             "taken (EXIF), else when added")
        for clause in CLAUSES:  # one flag per filter clause (search/filters.py)
            sp.add_argument(f"--{clause.key.replace('_', '-')}", dest=clause.key, help=clause.help,
                            metavar=None if clause.choices else clause.metavar, choices=clause.choices or None)
    add("list", cmd_list, "List indexed images.").add_argument("--json", action="store_true")
    add("remove", cmd_remove, "Remove an image (id or id prefix) from the index.").add_argument("id")
    sp = add("caption", cmd_caption, "Replace an image's caption by your own text.")
    sp.add_argument("id")
    sp.add_argument("text")
    sp = add("text", cmd_text, "Show the words read in an image, or replace them by yours (kept through "
                               "OCR model changes; \"\" clears them).")
    sp.add_argument("id")
    sp.add_argument("text", nargs="?", default=None)
    sp = add("tags", cmd_tags, "Show an image's tags, or replace them by yours (kept through model changes).")
    sp.add_argument("id")
    sp.add_argument("tags", nargs="*", metavar="TAG")
    sp.add_argument("--clear", action="store_true", help="remove every tag of the image")
    sp = add("reindex", cmd_reindex, "Re-embed stored images after a model change or an interrupted run.")
    sp.add_argument("--metadata", action="store_true",
                    help="also read what every stored file says again (taken, GPS place, camera, IPTC/XMP title, "
                         "description, keywords); no model runs for it")
    sp.add_argument("--ocr", action="store_true",
                    help="instead, read the text in every picture the current OCR model has not read (not yours)")
    from .measure import bench
    from .measure import evaluate

    evaluate.add_arguments(add("evaluate", evaluate.run, "Measure retrieval (Recall@k, MRR) on captioned images."))
    bench.add_arguments(add("bench", bench.run, "Time each stage, search at N images, and peer tools."))
    return p


def _show_library_messages() -> None:
    """The library's log lines (a one-time ONNX export, a fallback to torch and why) on stderr, plainly."""
    log = logging.getLogger("visual_search")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _show_library_messages()
    try:
        return args.func(args)
    except VisualSearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except KeyboardInterrupt:
        print("interrupted; run the same command again to finish", file=sys.stderr)
        return 130
