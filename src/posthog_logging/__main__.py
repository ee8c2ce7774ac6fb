"""``python -m posthog_logging``: the same as the ``posthog-logging`` command."""

from .cli import main

raise SystemExit(main())
