"""The embedded demo world: tiny tokenizer, model and data built offline from a seed."""

from recipe_opt.demo._tasks import NEW_TASKS, OLD_TASKS, TaskSplit, build_tasks
from recipe_opt.demo._world import DemoWorldConfig, WorldSummary, build_world

__all__ = [
    "NEW_TASKS",
    "OLD_TASKS",
    "DemoWorldConfig",
    "TaskSplit",
    "WorldSummary",
    "build_tasks",
    "build_world",
]
