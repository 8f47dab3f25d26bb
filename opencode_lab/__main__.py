"""``python -m opencode_lab``: the same command line as ``opencode-lab``."""

from .frontends.cli import main

raise SystemExit(main())
