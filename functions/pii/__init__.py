"""Lambda handlers of the PII domain."""
