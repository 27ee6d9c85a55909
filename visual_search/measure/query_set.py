"""What people type, measured: a labelled query set run through the real search.

A query set is a CSV `query,kind,relevant`: `kind` names a group (short, long, nonsense, absent...),
`relevant` the file names of the images a person would want, separated by `;` (empty: nothing
should be found). Each query goes through `engine.search` at one caption weight and the default
cut-off, as the Search tab sends it, and the table counts per group: relevant pairs shown, unrelated
images shown, and queries with any result. docs/sample_queries.csv is the set for the 20 samples
(`evaluate sample_images docs/sample_captions.csv --reference-captions --queries
docs/sample_queries.csv`); stages/rank.py calibrates short queries from it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import VisualSearchError

if TYPE_CHECKING:
    from ..engine import SearchEngine

COLUMNS = ("query", "kind", "relevant")


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    kind: str
    relevant: frozenset[str]  # file names; empty = nothing should be found


def read_query_set(path: str | Path) -> list[LabelledQuery]:
    """The labelled queries of a CSV file with the columns query, kind, relevant."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise VisualSearchError(f"{path}: a query set has the columns {','.join(COLUMNS)}")
        return [LabelledQuery(row["query"], row["kind"],
                              frozenset(n.strip() for n in row["relevant"].split(";") if n.strip()))
                for row in reader]


def run_query_set(engine: "SearchEngine", queries: list[LabelledQuery], alpha: float = 1.0,
                  min_relevance: float | None = None) -> dict[str, dict]:
    """Per kind: queries, relevant pairs, relevant shown, unrelated shown, queries with results, and
    the relevant pairs left out (query -> file names), through the search users get."""
    k = min(engine.settings.max_k, max(1, engine.count()))
    table: dict[str, dict] = {}
    for q in queries:
        shown = {r.record.filename for r in engine.search(q.query, k=k, alpha=alpha,
                                                          min_relevance=min_relevance).results}
        row = table.setdefault(q.kind, {"queries": 0, "relevant": 0, "relevant_shown": 0, "unrelated_shown": 0,
                                        "with_results": 0, "missed": {}})
        row["queries"] += 1
        row["relevant"] += len(q.relevant)
        row["relevant_shown"] += len(shown & q.relevant)
        row["unrelated_shown"] += len(shown - q.relevant)
        row["with_results"] += bool(shown)
        if q.relevant - shown:
            row["missed"][q.query] = sorted(q.relevant - shown)
    return table


def share_shown(row: dict) -> float:
    """Relevant pairs shown / relevant pairs (1.0 for a group without any)."""
    return row["relevant_shown"] / row["relevant"] if row["relevant"] else 1.0


def format_table(table: dict[str, dict], alpha: float, min_relevance: float) -> str:
    lines = [f"Query set at caption weight {alpha:g}, cut-off {min_relevance:g}",
             f"{'kind':<10}{'queries':>8}{'relevant pairs shown':>22}{'unrelated shown':>17}{'with results':>14}"]
    for kind, r in table.items():
        shown = f"{r['relevant_shown']}/{r['relevant']} ({share_shown(r):.0%})" if r["relevant"] else "-"
        lines.append(f"{kind:<10}{r['queries']:>8}{shown:>22}{r['unrelated_shown']:>17}{r['with_results']:>14}")
    missed = [f"{q} ({', '.join(names)})" for r in table.values() for q, names in r["missed"].items()]
    if missed:
        lines.append("relevant not shown: " + "; ".join(missed))
    return "\n".join(lines)
