"""Search spaces: YAML files of ranges, choices and fixed values that produce `Recipe`s."""

from recipe_opt.space._file import SpaceFile, space_file_schema
from recipe_opt.space._space import SearchSpace, SuggestsParams, load_search_space

__all__ = ["SearchSpace", "SpaceFile", "SuggestsParams", "load_search_space", "space_file_schema"]
