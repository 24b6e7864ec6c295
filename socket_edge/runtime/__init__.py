"""Edge runtime: sources, inference backends, the streaming pipeline. Never imports torch."""
