"""What can stop an import, in one line each."""


class ImportModelError(Exception):
    """The model, its tokenizer or the bundle cannot be imported or written; nothing was written."""


class ImportUsageError(ImportModelError):
    """The options asked for something impossible (both a word index and a tokenizer, a full --out)."""
