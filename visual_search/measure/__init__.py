"""Measurement: `evaluate` (retrieval quality on captioned images), `bench` (speed and memory of each
stage, side by side), and what they share (metrics, caption-file readers, random-weight models)."""
