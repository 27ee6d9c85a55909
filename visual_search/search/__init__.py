"""One query's path: searcher.py (request checks, cut-off, order, pages), the filter clauses declared
once (filters.py), and what makes a query fast without changing its answer: candidates.py (how deep
to ask each channel), lanes.py (both channels at once), facets.py and filter_table.py (filters
decided in memory)."""
