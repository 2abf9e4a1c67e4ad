"""One module per ``edge-lstm`` verb; heavy libraries are imported inside the commands."""
