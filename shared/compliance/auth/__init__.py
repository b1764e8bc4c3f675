"""Authentication primitives: API key generation, parsing and verification."""
