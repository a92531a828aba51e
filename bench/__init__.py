"""Benchmarks of the running stack (``python -m bench``) and of the model in process."""
