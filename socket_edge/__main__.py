"""`python -m socket_edge` runs the CLI."""

import sys

from socket_edge.cli import main

sys.exit(main())
