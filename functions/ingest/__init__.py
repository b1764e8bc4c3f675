"""Lambda handlers of the ingest domain."""
