"""``python -m posthog_logging``: the same as the ``posthog-logging`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
