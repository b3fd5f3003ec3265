"""Claim similarity's benchmarks: the labelled evaluation set (stories.py, pairs.py), its
precision and recall (evaluate.py) and the ingest cost of similarity (ingest_compare.py)."""
