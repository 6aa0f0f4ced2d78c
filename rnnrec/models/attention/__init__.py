"""Attention layers: encoder states (B, T, H) and a padding mask -> a summary per example."""
