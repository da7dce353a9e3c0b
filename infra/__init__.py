"""AWS and cluster-level components of the llm-platform program."""
