"""Thin Lambda handlers, one folder (one code asset) per domain."""
