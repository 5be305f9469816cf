"""Ingest: write the items of a source as one exactly-once batch (see batch.py).

    from loader.ingest import LoadOptions, load_source, load_messages
"""

from loader.ingest.batch import BatchFailed, BatchResult, LoadOptions, load_source
from loader.ingest.messages import load_messages

__all__ = ["BatchFailed", "BatchResult", "LoadOptions", "load_messages", "load_source"]
