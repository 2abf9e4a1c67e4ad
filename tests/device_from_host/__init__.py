"""The device package tested from the host, with what a Pi's own run (``device/tests``) lacks:
other environments and CPUs (venvs, qemu), the files and requirements it ships with, Keras
(the vectorizer), hypothesis (the tokenizer's properties) and a browser (the demo page)."""
