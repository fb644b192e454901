"""The grid of a sweep: `--grid KEY=v1,v2,...` options -> the list of runs, each a set of
`--set` overrides and a seed.

Values are Python literals, as in `--set`: `--grid MLP_DIM=64,256`, `--grid FFN=mlp,fff`
(bare words are strings), `--grid "FFF_LR_DEPTH=(0.1, 1.0),(1.0, 1.0)"` (tuples stay whole).
Keys may be dotted (`--grid zero.stage=1,2`). Several keys that move together are one option
with tuples: `--grid "FFF_DEPTH,FFF_TREES=(3,16),(5,4),(7,1)"` (trees of ~255 neurons each).
The grid is the Cartesian product of the options, first option slowest; `repeats` runs each
point with seeds SEED, SEED + 1, ...
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class Point:
    """One run of a sweep: the grid's values for it and its repeat index (seed offset)."""

    values: tuple[tuple[str, Any], ...]   # ((KEY, value), ...) in grid order
    repeat: int

    def overrides(self) -> list[str]:
        return [f"{key}={value!r}" for key, value in self.values]

    def label(self) -> str:
        return " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                        for k, v in self.values) or "base"


def _literal(text: str) -> Any:
    """A Python literal, or the text itself (a bare word such as fff is a string)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_grid_option(text: str) -> tuple[str, list]:
    """'KEY=v1,v2' -> ('KEY', [v1, v2])."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key or not raw:
        raise ConfigError(f"--grid {text!r}: expected KEY=v1,v2,..., e.g. --grid MLP_DIM=64,256")
    try:
        values = ast.literal_eval(f"[{raw}]")
    except (ValueError, SyntaxError):  # bare words: split on commas, parse each as --set does
        values = [_literal(part.strip()) for part in raw.split(",")]
    if any(v == "" for v in values):
        raise ConfigError(f"--grid {text!r}: an empty value: write KEY=v1,v2 without empty items")
    if len({repr(v) for v in values}) != len(values):
        raise ConfigError(f"--grid {text!r}: a value is repeated: use --repeats for repeats")
    return key, values


def _split_keys(text: str, key: str, values: list) -> list[tuple[tuple[str, Any], ...]]:
    """'K1,K2' with values [(a, b), ...] -> [((K1, a), (K2, b)), ...]; one key: [((K, v),)]."""
    keys = [k.strip() for k in key.split(",")]
    if len(keys) == 1:
        return [((key, v),) for v in values]
    if not all(keys) or any(not isinstance(v, tuple) or len(v) != len(keys) for v in values):
        raise ConfigError(f"--grid {text!r}: {len(keys)} keys need values of {len(keys)} each, "
                          f"e.g. --grid \"{','.join(keys)}=({','.join(['1'] * len(keys))}),...\"")
    return [tuple(zip(keys, v)) for v in values]


def expand_grid(options: list[str], repeats: int = 1) -> list[Point]:
    """Every combination of the --grid options, each `repeats` times."""
    if repeats < 1:
        raise ConfigError(f"--repeats {repeats} must be at least 1")
    axes = [_split_keys(o, *parse_grid_option(o)) for o in options]
    keys = [k for axis in axes for k, _ in axis[0]]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ConfigError(f"--grid {twice[0]} is given twice: put all its values in one option, "
                          f"--grid {twice[0]}=v1,v2")
    if "SEED" in keys and repeats > 1:
        raise ConfigError("--grid SEED and --repeats both set seeds: keep one")
    combos = itertools.product(*axes) if axes else [()]
    return [Point(tuple(kv for part in combo for kv in part), repeat)
            for combo in combos for repeat in range(repeats)]
