"""A process running a SearchEngine keeps numpy's BLAS to one thread (its spinning pool took a core from
the intake), and leaves it alone where the environment chose a number. Each case runs in a fresh
process: the limit is process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

_PROBE = """
import json, sys
from pathlib import Path
import numpy
from threadpoolctl import threadpool_info
from visual_search import SearchEngine, Settings

def numpys():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas" and "numpy" in p["filepath"]]

before = numpys()
engine = SearchEngine(Settings(data_dir=Path(sys.argv[1])))
a = numpy.random.default_rng(0).standard_normal((64, 512))
print(json.dumps({"before": before, "after": numpys(), "product": float((a @ a.T).trace())}))
"""


def _blas_threads(tmp_path, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path)], env={**clean, **env}, cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_a_search_engine_keeps_numpys_blas_to_one_thread(tmp_path):
    seen = _blas_threads(tmp_path)
    assert len(seen["before"]) == 1  # numpy's own OpenBLAS was found
    assert seen["after"] == [1]
    assert seen["product"] > 0  # and it still computes


def test_a_thread_count_the_environment_chose_is_kept(tmp_path):
    assert _blas_threads(tmp_path, OPENBLAS_NUM_THREADS="2")["after"] == [2]
