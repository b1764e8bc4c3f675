"""Data subject requests: the pure domain pieces (no database, no AWS) the DSR functions build on."""
