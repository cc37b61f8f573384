"""The embedded demo world: tiny tokenizer, model and data built offline from a seed."""

from recipe_opt.demo._tasks import CYCLE_TASKS, NEW_TASKS, OLD_TASKS, TaskSplit, build_cycle_tasks, build_tasks
from recipe_opt.demo._world import WORLD_FORMAT, DemoWorldConfig, WorldSummary, build_world

__all__ = [
    "CYCLE_TASKS",
    "NEW_TASKS",
    "OLD_TASKS",
    "WORLD_FORMAT",
    "DemoWorldConfig",
    "TaskSplit",
    "WorldSummary",
    "build_cycle_tasks",
    "build_tasks",
    "build_world",
]
