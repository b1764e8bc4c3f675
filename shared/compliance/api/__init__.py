"""What every HTTP handler shares: problem+json errors and the caller's identity."""
