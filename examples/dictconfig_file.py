"""Configure everything from a YAML or JSON file with ``logging.config.dictConfig``.

The handler reads ``POSTHOG_API_KEY`` and ``POSTHOG_HOST`` from the environment,
so the file holds no secret.

    python examples/dictconfig_file.py              # examples/logging.yaml
    python examples/dictconfig_file.py logging.json # or the JSON twin
"""

from __future__ import annotations

import json
import logging.config
import os
import sys
from pathlib import Path
from typing import Any

import posthog_logging as pl
from example_support import posthog_target


def load_config(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml  # noqa: PLC0415 - only YAML configs need PyYAML (the [yaml] extra)

        config: dict[str, Any] = yaml.safe_load(text)
    else:
        config = json.loads(text)
    return config


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "logging.yaml"
    api_key, host = posthog_target()
    os.environ.setdefault("POSTHOG_API_KEY", api_key)
    os.environ.setdefault("POSTHOG_HOST", host)
    logging.config.dictConfig(load_config(Path(__file__).with_name(name)))
    with pl.span("nightly batch", type="workflow_run", metadata={"job": "reindex"}) as run:
        for shard in range(3):
            with pl.span(f"shard {shard}", type="workflow_step", input={"shard": shard}) as step:
                step.update(output={"documents": 100 * (shard + 1)})
        run.update(output="reindexed 600 documents")


if __name__ == "__main__":
    main()
