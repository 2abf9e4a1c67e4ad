"""Regenerate the shipped review samples from the IMDB tarball: python scripts/make_samples.py PATH"""

from __future__ import annotations

import sys
from pathlib import Path

from edge_lstm.samples import TEST_SAMPLE, TRAIN_SAMPLE, write_sample
from edge_lstm.train.data import load_imdb


def main(path: str) -> None:
    splits = load_imdb(Path(path))
    write_sample(TEST_SAMPLE, splits["test"].balanced(300, seed=2026))
    write_sample(TRAIN_SAMPLE, splits["train"].balanced(400, seed=2026))


if __name__ == "__main__":
    main(sys.argv[1])
