"""Errors a user can cause. Each carries one clear message saying what was wrong and how to fix it."""


class VIGCError(Exception):
    """Base class of every error VIGC raises on purpose (bad config, bad checkpoint, bad input)."""


class ConfigError(VIGCError):
    """A config file, a `--options` override or a builder argument is wrong."""


class CheckpointError(VIGCError):
    """A checkpoint file cannot be read, is of an unknown format, or leaves required weights uninitialised."""


class TokenizerError(VIGCError):
    """A tokenizer directory is missing or unusable."""


class EvalInputError(VIGCError):
    """An evaluation input (annotations, synonym list, captions, records, images) is missing or malformed."""
