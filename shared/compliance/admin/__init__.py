"""Organisation administration: API keys."""
