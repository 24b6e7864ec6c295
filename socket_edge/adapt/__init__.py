"""SOCKET adaptation (issue 3): losses, pseudo-labels, the trainer."""
