"""What every trainer shares: the run folder (config, metrics, checkpoint, curves; --resume)."""
