"""Measuring the device: ``bench`` of the bundle's models, and a load tester of a running ``serve``."""
