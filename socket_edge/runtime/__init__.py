"""Edge runtime: sources, the streaming pipeline, outputs, bench (models open through socket_edge.backends).
Never imports torch."""
