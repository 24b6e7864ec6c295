"""What every trainer shares: the training loop (loop.py) and the run folder (config, metrics,
checkpoint, curves; --resume)."""
