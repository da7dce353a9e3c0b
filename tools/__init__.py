"""Command-line tools of llm-platform: offline plan, preflight, model sync."""
