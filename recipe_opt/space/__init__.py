"""Search spaces: YAML files of ranges, choices and fixed values that produce `Recipe`s."""

from recipe_opt.space._space import (
    SearchSpace,
    SpaceFile,
    SuggestsParams,
    load_search_space,
    space_file_schema,
)

__all__ = ["SearchSpace", "SpaceFile", "SuggestsParams", "load_search_space", "space_file_schema"]
