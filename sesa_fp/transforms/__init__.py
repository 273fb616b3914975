"""Transforms: pure record functions for `stage`, and the seed's `Transformer` adapter.

>>> from sesa_fp import pipe, stage
>>> from sesa_fp.transforms import normalize, cast
>>> list(pipe([{"n": " 7 "}], stage(normalize()), stage(cast("n", to="int"))))
[{'n': 7}]
"""

from sesa_fp.transforms.cast import CAST_TYPES, CastError, cast, cast_value
from sesa_fp.transforms.classes import Transformer, TransformerStage, python_class
from sesa_fp.transforms.derive import ValidationError, derive, validate
from sesa_fp.transforms.normalize import normalize, normalize_value

__all__ = [
    "CAST_TYPES",
    "CastError",
    "Transformer",
    "TransformerStage",
    "ValidationError",
    "cast",
    "cast_value",
    "derive",
    "normalize",
    "normalize_value",
    "python_class",
    "validate",
]
