"""The Model API custom-model authors subclass, and the repository of loaded models."""
