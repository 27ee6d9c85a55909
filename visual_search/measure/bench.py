"""`python -m visual_search bench`: per-stage timings, search latency at N indexed images, indexing
throughput, peak memory, and the same work done the way a user would without this project.

Everything runs in a temporary data dir. `--random-weights` builds the default architectures
(BLIP-base, CLIP ViT-B-32) with random weights offline plus the real all-MiniLM-L6-v2; without it
the configured models (VS_* variables, hub defaults) are loaded - the tests point those at tiny
models. What is measured, and how: stages.py (stages, indexing, search at N), backends.py (the
query encoders on torch and on ONNX Runtime side by side, cold CLI searches), levers.py (thread
settings, int8...), peers.py (Chroma's OpenCLIP function, a transformers pipeline), indexing.py
(indexing three ways on 12 MP phone JPEGs: around the models, the models alone, end to end; alone
with `--indexing`).
Figures from this project's machine, and how to read them: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ..config import Settings
from ..errors import InvalidQuery
from ..library.intake import image_files
from . import indexing as ix
from .filter_costs import format_rows as format_filter_rows

DEFAULT_SIZES = "1000,10000,100000"
# The project's published targets (2 CPU cores, fp32, default architectures).
SEARCH_P50_MS, SEARCH_P95_MS, TARGET_AT = 30.0, 60.0, 100_000
INDEX_IMAGES_PER_S = 1.0
CHROMA_RATIO = 3.0
PEAK_RSS_MB = 3072.0
# ONNX Runtime query encoders against torch, as ratios from the same run (issue 10)
ONNX_SEARCH_RATIO, CLI_WALL_RATIO, CLI_PEAK_RATIO, AGREEMENT_AT = 0.45, 0.25, 0.4, 10_000
_OPENMP_ENV = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--random-weights", action="store_true",
                   help="full-size default architectures with random weights, built offline (no hub needed)")
    p.add_argument("--sizes", default=DEFAULT_SIZES,
                   help=f"indexed images N for search timings (default {DEFAULT_SIZES})")
    p.add_argument("--images", type=int, default=None, help="sample images used for the image stages (default all)")
    p.add_argument("--queries", type=int, default=50, help="distinct queries timed per N (default 50)")
    p.add_argument("--weights-dir", default=None, help="keep the random-weight models (and their ONNX exports) here")
    p.add_argument("--onnx-image-towers", action="store_true",
                   help="also export CLIP's image tower and BLIP's vision encoder to ONNX Runtime and time them "
                        "(index-time candidates, not used; minutes, and a few GB while BLIP exports)")
    p.add_argument("--cli-runs", type=int, default=3,
                   help="fresh `search` processes timed per backend, the median reported (default 3)")
    p.add_argument("--indexing", action="store_true",
                   help="only measure indexing, three ways, on generated 12 MP phone JPEGs (minutes, not the hour "
                        "the whole bench takes)")
    p.add_argument("--photos", type=int, default=None,
                   help="phone photos indexed in the indexing measurement (default 16 on a CPU, 256 on a GPU)")
    p.add_argument("--photo-size", default="4000x3000", help="their size, WIDTHxHEIGHT (default 4000x3000: 12 MP)")
    p.add_argument("--batches", default=None,
                   help="batch sizes timed for the models alone, e.g. 1,2,8 (default 1,2,8 on a CPU, 8,32,64 on a GPU)")
    p.add_argument("--precisions", default=None,
                   help="precisions timed for the models alone, from fp32,fp16,bf16 (default fp32 on a CPU, all three "
                        "on CUDA)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def _parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        sizes = []
    if not sizes or sizes[0] < 10:
        raise InvalidQuery(f"--sizes takes whole numbers of at least 10 separated by commas, got {text!r}")
    return sizes


def run(args: argparse.Namespace) -> int:
    sizes = _parse_sizes(args.sizes)
    indexing = ix.options(args)
    with tempfile.TemporaryDirectory(prefix="vs-bench-") as tmp:
        if args.indexing:
            result = ix.run_alone(Path(tmp), args.random_weights, args.weights_dir, indexing)
            print(json.dumps(result) if args.json else "\n".join(ix.format_alone(result)))
            return 0
        result = bench(Path(tmp), sizes, args.random_weights, args.images, max(5, args.queries), args.weights_dir,
                       max(1, args.cli_runs), args.onnx_image_towers, indexing)
    print(json.dumps(result) if args.json else format_report(result))
    return 0


def _say(t0: float, message: str) -> None:
    print(f"[bench {time.perf_counter() - t0:6.0f} s] {message}", file=sys.stderr, flush=True)


def load_models(settings: Settings, random_weights: bool, folder: Path) -> tuple[Settings, dict, dict[str, float]]:
    """(settings naming the models, the loaded models, load seconds each), loaded as the app loads them:
    through the engine, except that random-weight BLIP is pinned at a fixed caption length."""
    from ..engine import SearchEngine

    if random_weights:
        from .models import CAPTION_TOKENS, random_models

        rm = random_models(folder)
        settings = replace(settings, caption_model=rm.caption_model, clip_model=rm.clip_model,
                           clip_pretrained=rm.clip_weights, text_model=rm.text_model, caption_max_tokens=CAPTION_TOKENS)
    engine = SearchEngine(replace(settings, backend="torch"))  # the torch models; backends.py adds ONNX twins
    makers = {name: (lambda name=name: getattr(engine, name)) for name in ("captioner", "clip", "text_encoder")}
    if random_weights:
        from ..models.device import caption_batch, resolve_device
        from ..stages.caption import BlipCaptioner

        batch = caption_batch(settings.caption_batch, resolve_device(settings.device))
        makers["captioner"] = lambda: BlipCaptioner(rm.caption_model, settings.device, max_new_tokens=CAPTION_TOKENS,
                                                    batch_size=batch, min_new_tokens=CAPTION_TOKENS)
    models, load_s = {}, {}
    for name, make in makers.items():
        t0 = time.perf_counter()
        models[name] = make()
        load_s[name] = round(time.perf_counter() - t0, 1)
    return settings, models, load_s


def bench(tmp: Path, sizes: list[int], random_weights: bool, n_images: int | None, n_queries: int,
          weights_dir: str | None = None, cli_runs: int = 3, image_towers: bool = False,
          indexing: dict | None = None) -> dict:
    """Production path first (load, index, search at N: the memory peak is taken there), then each
    stage and lever on its own, then the peers (which load their own copies of the models)."""
    import torch

    from . import backends as bk
    from . import levers as lv
    from . import peers as peers_
    from . import stages as st
    from ..engine import SearchEngine
    from ..library.indexer import WRITE_GROUP

    t0 = time.perf_counter()
    watch = st.CpuWatch()
    settings = Settings.from_env(data_dir=tmp / "stages", chroma_url=None)
    if weights_dir and not settings.onnx_dir:  # keep the exports with the weights they were made from
        settings = replace(settings, onnx_dir=Path(weights_dir) / "onnx")
    _say(t0, "loading models" + (" (building random weights first)" if random_weights else ""))
    settings, models, load_s = load_models(settings, random_weights, Path(weights_dir) if weights_dir else tmp / "weights")
    _say(t0, "query encoders on ONNX Runtime (exported and verified first, unless cached)")
    onnx = bk.onnx_encoders(settings, models)
    load_s["onnx_query_encoders"] = onnx["load_s"]
    main = "torch" if settings.backend == "torch" else "onnx"  # what the app searches with
    encoders = {"torch": {}, "onnx": {"text_encoder": onnx["text_encoder"], "clip_text": onnx["clip_text"]}}
    rss = {"models_loaded": st.rss_mb()}
    paths = image_files(Path(settings.sample_dir))
    paths = paths[: n_images or len(paths)]
    images = st.load_images(paths, settings)
    engine = SearchEngine(settings, **models)  # torch's query encoders: the stages and levers below time those
    texts = st.queries(n_queries)
    models["captioner"].caption(images[:1]), _encode_warm(engine, images)  # one-time kernel set-up, untimed

    _say(t0, f"indexing {len(paths)} sample images end to end")
    index = st.index_end_to_end(SearchEngine(replace(settings, data_dir=tmp / "index"), **{**models, **encoders[main]}),
                                paths)
    rss["after_indexing"] = st.rss_mb()
    _say(t0, f"search at N = {', '.join(f'{n:,}' for n in sizes)} (filling the store takes a while), "
              "torch and ONNX query encoders in turn")
    at = replace(settings, data_dir=tmp / "store")
    store = st.search_at_sizes({name: SearchEngine(at, **{**models, **enc}) for name, enc in encoders.items()}, main,
                               sizes, n_queries)
    rss["after_search"] = st.rss_mb()
    rss_split = st.rss_split_mb()
    peak = st.peak_rss_mb()  # the production path's peak: before levers and peers

    _say(t0, f"stages: captioning {len(images)} images at batch 1 and batch {WRITE_GROUP}, then CLIP, encoders")
    stages: dict = {"caption": st.caption_stage(models["captioner"], images)}
    stages["clip_image"] = st.clip_image_stage(models["clip"], images)
    stages["caption_embedding"] = st.caption_embedding_stage(models["text_encoder"], stages["caption"]["captions"])
    stages["query_encoding"] = st.query_encoding_stage(engine, texts)
    stages["caption"]["example"] = stages["caption"].pop("captions")[0]
    three_ways = ix.measure(settings, models, ix.photo_folder(weights_dir), tmp, rounds=1, say=lambda m: _say(t0, m),
                            **(indexing or {}))
    _say(t0, "backends: query encoding, cold command-line searches, query encoding in processes of their own")
    query_ms = bk.query_ms({"torch": (models["text_encoder"], models["clip"]),
                            "onnx": (onnx["text_encoder"], onnx["clip_text"])}, texts)
    cli = bk.cli_searches(settings, tmp / "index", cli_runs)
    own = bk.own_processes(settings, tmp / "own", st.queries(2 * n_queries, skip=50_000))
    app = bk.app_processes(settings, paths[:WRITE_GROUP], tmp / "app")
    _say(t0, "levers: threads, parallel query encoders, search during indexing, int8 captioning, "
              "the sentence-transformers library")
    levers = {
        "threads": lv.threads(engine, images, texts[:20]),
        "parallel_query_encoders": lv.parallel_encoders(engine, texts),
        "query_encoding_while_indexing": lv.while_indexing(engine, images, texts[:20]),
        "int8_caption": lv.int8_captioning(models["captioner"], images),
        "sentence_transformers_library": lv.sentence_transformers_library(models["text_encoder"], texts),
    }
    if image_towers:
        levers["onnx_image_towers"] = bk.image_towers(models["clip"], models["captioner"], images, tmp / "towers")
    _say(t0, "peers: Chroma OpenCLIPEmbeddingFunction, transformers pipeline")
    chroma = peers_.chroma_openclip(models["clip"], settings.clip_model, settings.clip_pretrained, images, texts[:20],
                                    tmp / "peers")
    hf = peers_.hf_pipeline_caption(models["captioner"], settings.caption_model, images)
    result = {
        "random_weights": random_weights,
        "models": {"caption": settings.caption_model, "text": models["text_encoder"].identity,
                   "clip": models["clip"].identity, "caption_tokens": (
                       f"{models['captioner'].min_new_tokens} (fixed)" if models["captioner"].min_new_tokens
                       else f"up to {models['captioner'].max_new_tokens}")},
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__, "onnxruntime": _version("onnxruntime"), "python": platform.python_version(), "platform": platform.platform(),
                    "openmp_env": {k: os.environ[k] for k in _OPENMP_ENV if k in os.environ}},
        "load_s": load_s,
        "index": index,
        "index_images_per_s": index["images_per_s"],
        "indexing": three_ways,
        "store": store,
        "search_ms": {n: {"p50": s["search_ms"]["p50"], "p95": s["search_ms"]["p95"]} for n, s in store.items()},
        "backends": {name: {"query_ms": {k: query_ms[name][k] for k in ("p50", "p95")},
                            "search_ms": {n: {k: s["backends"][name][k] for k in ("p50", "p95")}
                                          for n, s in store.items()}} for name in ("torch", "onnx")},
        "own_process_query_ms": own,
        "cli_search_s": cli["wall_s"],
        "cli_search_peak_rss_mb": cli["peak_rss_mb"],
        "app_peak_rss_mb": app["peak_rss_mb"],
        "app_images": app["images"],
        "onnx": {"search_backend": main, "verified": onnx["verified"], "exports": bk.exports(settings),
                 "agreement": {n: s["agreement"] for n, s in store.items()}},
        "peak_rss_mb": peak,
        "rss_mb": rss,
        "rss_split_mb": rss_split,
        "stages": stages,
        "levers": levers,
        "peers": {
            "chroma_openclip_index_ratio": chroma["index_ratio"],
            "chroma_openclip_query_ratio": chroma["query_ratio"],
            "hf_pipeline_caption_ratio": hf["caption_ratio"],
            "chroma_openclip": chroma,
            "hf_pipeline": hf,
        },
        "other_cpu_load": watch.others(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    result["targets"] = targets(result)
    _say(t0, "done")
    return result


def _version(package: str) -> str:
    from importlib import metadata

    return metadata.version(package)


def _encode_warm(engine, images) -> None:
    engine.clip.encode_images(images[:1])
    engine.clip.encode_texts(["a warm-up query"])
    engine.text_encoder.encode(["a warm-up caption"])


def targets(r: dict) -> dict:
    at = str(TARGET_AT) if str(TARGET_AT) in r["search_ms"] else max(r["search_ms"], key=int)
    s = r["search_ms"][at]
    index, ratio = r["index_images_per_s"], r["peers"]["chroma_openclip_index_ratio"]
    app_peak = r["app_peak_rss_mb"][r["onnx"]["search_backend"]]
    rows = {
        f"search p50 <= {SEARCH_P50_MS:g} ms": (s["p50"], s["p50"] <= SEARCH_P50_MS),
        f"search p95 <= {SEARCH_P95_MS:g} ms": (s["p95"], s["p95"] <= SEARCH_P95_MS),
        f"indexing >= {INDEX_IMAGES_PER_S:g} image/s": (index, index >= INDEX_IMAGES_PER_S),
        f"visual indexing >= {CHROMA_RATIO:g}x Chroma OpenCLIP": (ratio, ratio >= CHROMA_RATIO),
        # what a user's process holds: an app-like one (all models, index, search) on the backend the app
        # uses; this process holds both backends and the peers besides (r["peak_rss_mb"], reported)
        f"peak RSS of an app-like process <= {PEAK_RSS_MB:g} MB": (app_peak, app_peak <= PEAK_RSS_MB),
    }
    rows.update(_backend_targets(r))
    return {"search_at_n": int(at), **{k: {"value": v, "met": bool(ok)} for k, (v, ok) in rows.items()}}


def _backend_targets(r: dict) -> dict:
    """ONNX Runtime against torch, each a ratio of two figures from this run."""
    b, cli, mem = r["backends"], r["cli_search_s"], r["cli_search_peak_rss_mb"]
    worst = max(b["onnx"]["search_ms"][n]["p50"] / b["torch"]["search_ms"][n]["p50"] for n in b["onnx"]["search_ms"])
    agreements = r["onnx"]["agreement"]
    at = str(AGREEMENT_AT) if str(AGREEMENT_AT) in agreements else max(agreements, key=int)
    agree = agreements[at]
    return {
        f"new-query search p50, ONNX / torch <= {ONNX_SEARCH_RATIO:g} at every N": (round(worst, 3), worst <= ONNX_SEARCH_RATIO),
        f"cold CLI search, ONNX / torch <= {CLI_WALL_RATIO:g}": (round(cli["onnx"] / cli["torch"], 3),
                                                                 cli["onnx"] / cli["torch"] <= CLI_WALL_RATIO),
        f"CLI search peak memory, ONNX / torch <= {CLI_PEAK_RATIO:g}": (round(mem["onnx"] / mem["torch"], 3),
                                                                       mem["onnx"] / mem["torch"] <= CLI_PEAK_RATIO),
        f"same top-10 and relevance within 1e-4, ONNX vs torch, at N = {int(at):,}": (
            f"{agree['same_top_k']}/{agree['queries']}, max diff {agree['max_relevance_diff']:.1e}",
            agree["same_top_k"] == agree["queries"] and agree["max_relevance_diff"] <= 1e-4) if agree else ("n/a", False),
    }


def format_report(r: dict) -> str:
    st, m = r["stages"], r["models"]
    q = st["query_encoding"]
    out = [
        f"models: caption {m['caption']} ({m['caption_tokens']} tokens), text {m['text']}, CLIP {m['clip']}"
        + ("  [RANDOM WEIGHTS]" if r["random_weights"] else ""),
        f"machine: {r['machine']['cpus']} CPUs, torch {r['machine']['torch']}, {r['machine']['torch_threads']} threads"
        + "".join(f", {k}={v}" for k, v in r["machine"]["openmp_env"].items())
        + (f"; other processes used {r['other_cpu_load']:.0%} of the CPU meanwhile" if r["other_cpu_load"] else ""),
        "",
        f"Stage                                   batch 1  batch {st['caption']['write_group']} (engine's write group)",
        f"caption (s/image)                     {st['caption']['batch1_s_per_image']:>9.3f}   "
        f"{st['caption']['write_group_s_per_image']:>9.3f}",
        f"CLIP image (ms/image)                 {st['clip_image']['batch1_ms_per_image']:>9.1f}   "
        f"{st['clip_image']['write_group_ms_per_image']:>9.1f}",
        f"caption embedding (ms/caption)                    {st['caption_embedding']['ms_per_caption']:>9.2f}",
        "",
        "Query encoding (ms)                       p50       p95",
    ]
    for label, key in (("caption channel", "caption_ms"), ("CLIP text, trimmed (used)", "clip_trimmed_ms"),
                       ("CLIP text, all 77 tokens", "clip_full77_ms"), ("both channels", "both_ms")):
        out.append(f"{label:<38}{q[key]['p50']:>8.1f}  {q[key]['p95']:>8.1f}")
    lv = r["levers"]
    for n, t in lv["threads"].items():
        out.append(f"torch threads = {n}: CLIP image {t['clip_image_ms_per_image']:.1f} ms/image, "
                   f"query encoding p50 {t['query_encoding_ms']['p50']:.1f} ms")
    par = lv["parallel_query_encoders"]
    out.append(f"both query encoders at once (1 thread each): p50 {par['parallel_ms']['p50']:.1f} ms vs "
               f"{par['sequential_ms']['p50']:.1f} ms one after the other")
    out.append("query encoding while another thread captions: " + ", ".join(
        f"{n} thread{'s' * (n != '1')} p50 {v['p50']:.1f} / p95 {v['p95']:.1f} ms"
        for n, v in lv["query_encoding_while_indexing"].items()))
    out.append(f"int8 captioning (opt-in candidate, not used): {lv['int8_caption']['batch1_s_per_image']:.3f} s/image "
               f"vs fp32 {st['caption']['batch1_s_per_image']:.3f}")
    stl = lv.get("sentence_transformers_library")
    if stl:
        out.append(f"caption-channel query via the sentence-transformers library: p50 {stl['library_ms']['p50']:.1f} ms vs "
                   f"ours {stl['ours_ms']['p50']:.1f} ms (vectors agree to cosine {stl['min_cosine']:.5f}); "
                   f"importing it costs {stl['import_mb']} MB")
    b = r["backends"]
    out += ["", "Query encoders, torch vs ONNX Runtime    both channels p50 / p95 ms | new-query search p50 / p95 ms at N"]
    for name in ("torch", "onnx"):
        out.append(f"{name:<40}{b[name]['query_ms']['p50']:>8.1f} / {b[name]['query_ms']['p95']:<6.1f}|"
                   + "".join(f"  {int(n):,}: {v['p50']:.1f} / {v['p95']:.1f}" for n, v in b[name]["search_ms"].items()))
    own = r["own_process_query_ms"]
    out.append(f"both query encoders in a process of their own, OpenMP waiting at its defaults: p50 torch "
               f"{own['torch']['p50']:.1f} ms, ONNX {own['onnx']['p50']:.1f} ms -> {own['ratio']:.2f}x "
               "(torch's best on a quiet machine; the figures above run with the bench's OpenMP setting)")
    out.append(f"cold `python -m visual_search search`: torch {r['cli_search_s']['torch']:.2f} s / "
               f"{r['cli_search_peak_rss_mb']['torch']:.0f} MB, ONNX {r['cli_search_s']['onnx']:.2f} s / "
               f"{r['cli_search_peak_rss_mb']['onnx']:.0f} MB peak (median of fresh processes)")
    out.append(f"an app-like process (load, index {r['app_images']} images, search) peaks at torch "
               f"{r['app_peak_rss_mb']['torch']:.0f} MB, ONNX {r['app_peak_rss_mb']['onnx']:.0f} MB")
    for e in r["onnx"]["exports"]:
        out.append(f"ONNX export {e['kind']}: " + (f"verified, min probe cosine {e['min_cosine']}"
                   if e["verified"] else f"REFUSED ({e['reason']})") + f", {e['export_s']} s")
    for name, t in lv.get("onnx_image_towers", {}).items():
        out.append(f"{name} on ONNX Runtime (measured, not used): " + (t["error"] if "error" in t else
                   f"{t['onnx']['write_group_ms_per_image']:.1f} vs torch {t['torch']['write_group_ms_per_image']:.1f} "
                   f"ms/image in groups, {t['onnx']['batch1_ms_per_image']:.1f} vs {t['torch']['batch1_ms_per_image']:.1f} "
                   f"one at a time, min cosine {t['min_cosine']}"))
    out += ["", "Indexed N  fill (s) | store p50 ms: query cap/vis  count  vectors | search ms: p50    p95  warm p50"]
    for n, s in r["store"].items():
        sq = s["store_query_ms"]
        cold, warm = s["search_ms"], s["search_warm_ms"]
        out.append(f"{int(n):>9,} {s['fill_s']:>9.1f} |   {sq['caption']['p50']:>10.1f} / {sq['visual']['p50']:<4.1f}"
                   f"{s['store_count_ms']['p50']:>7.1f} {s['store_vectors_ms']['p50']:>8.1f} |"
                   f"{cold['p50']:>15.1f} {cold['p95']:>6.1f} {warm['p50']:>9.1f}")
    out.append("new-query search p50 ms, the two channels at once (lanes) vs one after the other; a page's records:")
    for n, s in r["store"].items():
        lanes, rec = s["levers"]["lanes"], s["levers"]["records"]
        out.append(f"{int(n):>9,}  " + ", ".join(f"{b} {v['at_once']['p50']:.1f} vs {v['one_after_other']['p50']:.1f}"
                                             for b, v in lanes.items())
                   + f"; catalog {rec['catalog_ms']['p50']:.2f} vs Chroma get {rec['chroma_get_ms']['p50']:.2f} ms")
    largest = max(r["store"], key=int)
    out += ["", *format_filter_rows(int(largest), r["store"][largest]["filters"])]
    ix, p = r["index"], r["peers"]
    rss = ", ".join(f"{k.replace('_', ' ')} {v:.0f}" for k, v in r["rss_mb"].items())
    co, hf = p["chroma_openclip"], p["hf_pipeline"]
    out += [
        "",
        f"indexing end to end: {ix['images_per_s']:.2f} images/s ({ix['images']} images in {ix['seconds']:.1f} s)",
        *ix.format_alone(r["indexing"]),
        f"peak RSS: {r['peak_rss_mb']:.0f} MB over load, indexing and search at the largest N (RSS {rss} MB)",
        "  resident after search: " + ", ".join(f"{k} {v:.0f} MB" for k, v in r["rss_split_mb"].items())
        + " (file = model weights mapped read-only from their files)",
        "",
        "Peers (theirs / ours; > 1 means we are faster)",
        f"Chroma OpenCLIPEmbeddingFunction, add(images=...): {co['their_ms_per_image']:.1f} vs "
        f"{co['our_ms_per_image']:.1f} ms/image -> {co['index_ratio']:.2f}x  (vectors agree: min cosine "
        f"{co['min_vector_cosine']:.4f})",
        f"Chroma OpenCLIP query(query_texts=...): p50 {co['their_query_ms']['p50']:.1f} vs "
        f"{co['our_query_ms']['p50']:.1f} ms -> {co['query_ratio']:.2f}x",
        f"transformers pipeline captioning: {hf['their_s_per_image']:.3f} vs {hf['our_s_per_image']:.3f} s/image "
        f"-> {hf['caption_ratio']:.2f}x  (batch {hf['batch']}, generation {hf['generation']}, "
        f"same captions: {hf['same_captions']})",
        "",
        f"Targets (search at N = {r['targets']['search_at_n']:,})",
    ]
    for name, t in r["targets"].items():
        if isinstance(t, dict):
            out.append(f"  {'met   ' if t['met'] else 'MISSED'}  {name}: {t['value']}")
    out.append(f"({r['seconds']:.0f} s in all)")
    return "\n".join(out)
