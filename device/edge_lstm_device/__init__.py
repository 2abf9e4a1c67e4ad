"""edge-lstm-device: IMDB review text to sentiment with only numpy and a TFLite interpreter."""

__version__ = "0.1.0"
