"""NVIDIA GPU operator (device plugin, DCGM exporter)."""
