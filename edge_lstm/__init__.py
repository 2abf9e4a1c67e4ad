"""edge-lstm: the IMDB sentiment LSTM from training to a Raspberry Pi.

Importing this package never imports TensorFlow; only the commands that need it do.
"""

__version__ = "0.1.0"
