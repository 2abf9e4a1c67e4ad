"""Scoring reviews: interpreters, the numpy engine, the model, the pool, and the device's own
checks (probe, verify, calibrate). Imports only :mod:`edge_lstm_device.bundle.manifest`."""
