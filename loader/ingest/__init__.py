"""Ingest: write a source as one exactly-once batch through the one SQL path (see batch.py).

    from loader.ingest import LoadOptions, load_source
"""

from loader.ingest.batch import BatchFailed, BatchResult, LoadOptions, load_source

__all__ = ["BatchFailed", "BatchResult", "LoadOptions", "load_source"]
