"""The bundle on disk: its manifest, signatures, tokenizer files, reference scores and weights,
read with bounds. Imports nothing else of the package."""
