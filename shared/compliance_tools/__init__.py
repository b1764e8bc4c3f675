"""Developer tooling of the compliance control plane: CLI, local runtime, benchmarks (not shipped)."""
