"""Keep what native libraries print (TensorFlow, absl, LiteRT's "Created TensorFlow Lite XNNPACK
delegate") off the terminal, while Python's own stderr keeps working."""

from __future__ import annotations

import io
import os
import sys
from typing import Callable


def hide_native_stderr() -> Callable[[], None]:
    """Point file descriptor 2 at /dev/null, so what TensorFlow, absl and LiteRT write from C++
    (start-up lines, converter dumps) is hidden, while Python's ``sys.stderr`` (progress,
    warnings, errors) keeps writing to the real stderr. Returns the function that undoes it."""
    try:
        python_on_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, io.UnsupportedOperation):  # a test runner's in-memory stream
        python_on_fd2 = False
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
    replaced = sys.stderr
    if python_on_fd2:
        sys.stderr = io.TextIOWrapper(io.FileIO(os.dup(saved), "w"), encoding=replaced.encoding,
                                      errors="backslashreplace", line_buffering=True)

    def restore() -> None:
        sys.stderr.flush()
        if sys.stderr is not replaced:
            sys.stderr.close()
            sys.stderr = replaced
        os.dup2(saved, 2)
        os.close(saved)

    return restore
