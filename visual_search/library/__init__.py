"""The write side: the catalog of stored originals and records (the truth), intake of untrusted files,
thumbnails, and the parts that change them: indexer.py, reconcile.py (repair and rebuild), edits.py.
One writer at a time (writer.py)."""
