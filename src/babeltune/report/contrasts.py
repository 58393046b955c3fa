"""Which runs the report compares: the paper's planned contrasts, or every pair on request.

A grid of R runs has R(R-1)/2 pairs; the paper's grid (336 runs) would be 450,240 tests over 8 languages, and a
correction over that many leaves nothing significant. The paper compares specific things, within one model and
method: downsampled multilingual vs English-only and vs full multilingual in every test language, and the
downsampled and the full multilingual run vs each monolingual run in that run's own language.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

DOWNSAMPLED, ENGLISH, MONO, MULTI = "multilingual-downsampled", "english-only", "monolingual", "multilingual"
KINDS = ("paper", "all")


@dataclass(frozen=True)
class RunInfo:
    name: str
    regime: str
    group: str  # model, method and the sweep's other values: regimes are compared within a group
    languages: tuple[str, ...]  # what the mixture was drawn from (a monolingual run: its one language)
    seed: int | None = None  # the training seed, where the grid sweeps seeds: runs pair with their seed
    axes: tuple = ()  # (setting path, value as shown) of each swept setting but the seed, in sweep order

    @property
    def mixture(self) -> str:
        return self.name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Contrast:
    a: str
    b: str
    languages: tuple[str, ...] | None  # None: every test language both runs answered


def by_regime(runs: list[RunInfo]) -> dict[str, dict[str, list[RunInfo]]]:
    """group -> regime -> its runs, in grid order."""
    out: dict[str, dict[str, list[RunInfo]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        out[r.group][r.regime].append(r)
    return out


def paper(runs: list[RunInfo]) -> list[Contrast]:
    """The paper's comparisons, within each group.

    >>> runs = [RunInfo("m/lora/down", DOWNSAMPLED, "m/lora", ("en", "es")), RunInfo("m/lora/en", ENGLISH, "m/lora", ("en",)),
    ...         RunInfo("m/lora/es", MONO, "m/lora", ("es",)), RunInfo("m/full/en", ENGLISH, "m/full", ("en",))]
    >>> [(c.a, c.b, c.languages) for c in paper(runs)]
    [('m/lora/down', 'm/lora/en', None), ('m/lora/down', 'm/lora/es', ('es',))]
    """
    out = []
    for regimes in by_regime(runs).values():
        for base in regimes[DOWNSAMPLED] + regimes[MULTI]:
            others = regimes[ENGLISH] + regimes[MULTI] if base.regime == DOWNSAMPLED else []
            out += [Contrast(base.name, other.name, None) for other in others if other.seed == base.seed]
            out += [Contrast(base.name, mono.name, mono.languages[:1]) for mono in regimes[MONO]
                    if mono.languages and mono.seed == base.seed]  # fmt: skip
    return out


def neighbours(runs: list[RunInfo]) -> list[Contrast]:
    """Along each swept setting, each value against the next, everything else equal (model, method,
    mixture, seed and the other settings' values).

    >>> runs = [RunInfo(f"m/lora/lr={v}/down", DOWNSAMPLED, f"m/lora/lr={v}", (), None, (("lr", v),)) for v in "123"]
    >>> [(c.a, c.b) for c in neighbours(runs)]
    [('m/lora/lr=1/down', 'm/lora/lr=2/down'), ('m/lora/lr=2/down', 'm/lora/lr=3/down')]
    """
    out = []
    for i in range(len(runs[0].axes) if runs else 0):
        lines: dict[tuple, list[RunInfo]] = defaultdict(list)
        for r in runs:
            rest = r.axes[:i] + r.axes[i + 1 :]
            model_and_method = tuple(r.name.split("/")[:2])
            lines[model_and_method, r.mixture, r.seed, rest].append(r)
        for line in lines.values():
            out += [Contrast(a.name, b.name, None) for a, b in itertools.pairwise(line)]
    return out


def every_pair(runs: list[RunInfo]) -> list[Contrast]:
    return [Contrast(a.name, b.name, None) for a, b in combinations(runs, 2)]


def planned(kind: str, runs: list[RunInfo]) -> list[Contrast]:
    """The paper's comparisons (and, in a sweep, neighbouring values of each swept setting), or every pair."""
    return every_pair(runs) if kind == "all" else paper(runs) + neighbours(runs)
