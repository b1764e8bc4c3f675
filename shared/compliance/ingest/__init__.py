"""The usage-ingest slice: accept batches over HTTP, queue them, store them exactly once."""
