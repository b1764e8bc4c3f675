"""Tamper-evident audit trail: hash chains and RFC 6962 Merkle trees."""
