"""Stage 1: read the IMDB data set and train the model."""
