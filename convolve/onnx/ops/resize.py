"""Resize and Upsample: nearest and linear, axis by axis (placeholder, filled below)."""
