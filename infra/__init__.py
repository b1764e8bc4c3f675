"""CDK app of the compliance control plane (one stack, one construct per domain)."""
