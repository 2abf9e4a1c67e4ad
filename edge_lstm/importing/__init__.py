"""Bring a model trained elsewhere: model files read as data, the Keras IMDB word index."""
