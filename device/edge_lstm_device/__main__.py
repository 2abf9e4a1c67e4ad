"""``python -m edge_lstm_device``: the same as ``edge-lstm-device``."""

import sys

from edge_lstm_device.cli import main

sys.exit(main())
