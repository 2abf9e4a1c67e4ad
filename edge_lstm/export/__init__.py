"""Stage 2: convert, quantize, check and fingerprint the exported files."""
