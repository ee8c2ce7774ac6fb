"""A workflow with steps, a conditional and a sleep, using Mastra's workflow span types.

python examples/workflow.py
"""

from __future__ import annotations

import time
from typing import Any

import posthog_logging as pl
from example_support import setup


def main() -> None:
    setup()
    order: dict[str, Any] = {"id": "o-1001", "total": 240}
    with pl.span(
        "workflow: fulfil order",
        type="workflow_run",
        input=order,
        metadata={"userId": "customer-5"},
    ) as run:
        with pl.span("step: validate", type="workflow_step", input=order) as step:
            step.update(output={"valid": True})
        with pl.span("condition: needs review?", type="workflow_conditional") as condition:
            needs_review = order["total"] > 200
            condition.update(output={"needs_review": needs_review})
            condition.event(
                "branch taken",
                type="workflow_conditional_eval",
                output="review" if needs_review else "ship",
            )
        if needs_review:
            with pl.span("sleep: wait for reviewer", type="workflow_sleep") as wait:
                time.sleep(0.05)
                wait.update(attributes={"durationMs": 50})
        with pl.span("step: ship", type="workflow_step", input={"order": order["id"]}) as step:
            step.update(output={"tracking": "TRK-77"})
        run.update(output={"status": "shipped"})
    print("order shipped")


if __name__ == "__main__":
    main()
