class ModelError(RuntimeError):
    """A model file is missing or corrupt; the message names the file and the fix."""
