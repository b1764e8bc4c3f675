"""Consent records: granted, revoked, read as history; the ingest processor obeys them."""
