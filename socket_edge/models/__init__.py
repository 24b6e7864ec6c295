"""Source architectures, the f/g split, the ensemble, artifacts (save/load), source training."""
