"""User strategies: found in directories and entry points, and checked when they misbehave."""

import textwrap
from pathlib import Path

import numpy as np
import pytest

from finplat.backtest.adapters.strategy_loader import load_user_strategies
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.engine import run_strategy
from finplat.backtest.domain.errors import (
    InvalidParameterError,
    InvalidStrategyError,
    StrategyFailedError,
)
from finplat.backtest.domain.strategies import BUILT_IN, StrategyRegistry, get_strategy
from finplat.strategy import Indicators, Panel, Params, ParamSpec, StrategySpec
from tests.paths import REPO_ROOT
from tests.unit.backtest.helpers import make_bars

EXAMPLES = REPO_ROOT / "examples" / "strategies"
BARS = make_bars([10.0, 11.0, 12.0, 11.0, 10.0])


def _spec(returns: object) -> StrategySpec:
    def signal(bars: Bars, params: Params, ind: Indicators) -> object:
        return returns() if callable(returns) else returns

    return StrategySpec("misbehaving", "returns what the test says", (), signal)  # type: ignore[arg-type]


def test_the_example_directory_loads_with_its_source_and_again_adds_nothing() -> None:
    registry = StrategyRegistry()

    first = load_user_strategies([EXAMPLES], registry)
    again = load_user_strategies([EXAMPLES], registry)

    assert [(e.spec.name, e.source) for e in first] == [
        ("momentum_rotation", f"file {EXAMPLES / 'momentum_rotation.py'}"),
        ("numpy_sma_crossover", f"file {EXAMPLES / 'numpy_sma_crossover.py'}"),
    ]
    assert again == []
    assert registry.names() == ("momentum_rotation", "numpy_sma_crossover")
    assert [p.name for p in registry.get("numpy_sma_crossover").schema] == ["fast", "slow"]


@pytest.mark.usefixtures("isolated_registry")
def test_the_numpy_example_trades_as_the_built_in_sma_crossover(q4_bars: Bars) -> None:
    load_user_strategies([EXAMPLES])

    user = run_strategy(q4_bars, "numpy_sma_crossover", {"fast": 10, "slow": 30})
    built_in = run_strategy(q4_bars, "sma_crossover", {"fast": 10, "slow": 30})

    # Same rule; on these 4,320 real bars no two means tie, so rounding decides nothing.
    assert np.array_equal(user.side, built_in.side)
    assert user.metrics.n_trades == built_in.metrics.n_trades > 50


def test_an_installed_packages_entry_point_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real installed distribution, as pip leaves it: a module and its dist-info.
    (tmp_path / "acme_signals.py").write_text(
        (EXAMPLES / "numpy_sma_crossover.py")
        .read_text()
        .replace('"numpy_sma_crossover"', '"acme_crossover"')
    )
    info = tmp_path / "acme_signals-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-signals\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[finplat.strategies]\ncrossover = acme_signals:STRATEGY\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = StrategyRegistry()

    found = load_user_strategies([], registry)

    assert [(e.spec.name, e.source) for e in found] == [
        ("acme_crossover", "entry point crossover = acme_signals:STRATEGY")
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def broken(:\n", "bad.py: SyntaxError"),
        ("raise RuntimeError('no data feed')\n", "bad.py: RuntimeError: no data feed"),
        (
            "from finplat.strategy import StrategySpec, ParamSpec\n"
            "S = StrategySpec('sma_crossover', 'mine', (), lambda b, p, i: b.close * 0)\n",
            "strategy 'sma_crossover': from file .*bad.py is already registered from built-in",
        ),
        (
            "from finplat.strategy import StrategySpec, ParamSpec\n"
            "S = StrategySpec('x', 'd', (ParamSpec('n', int, 0, 1, 5, 'n'),), print)\n",
            "default of 'n' is outside \\[1, 5\\]",
        ),
    ],
)
def test_a_strategy_file_that_does_not_load_names_itself(
    tmp_path: Path, source: str, message: str
) -> None:
    (tmp_path / "bad.py").write_text(source)
    registry = StrategyRegistry()
    registry.add(get_strategy("sma_crossover"), BUILT_IN)

    with pytest.raises(InvalidStrategyError, match=message):
        load_user_strategies([tmp_path], registry)


def test_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidStrategyError, match=r"strategy directory .*nowhere does not exist"):
        load_user_strategies([tmp_path / "nowhere"], StrategyRegistry())


def test_a_file_importing_a_built_in_does_not_register_it_again(tmp_path: Path) -> None:
    (tmp_path / "reuse.py").write_text(
        textwrap.dedent("""
            from finplat.backtest.domain.strategies import get_strategy
            from finplat.strategy import StrategySpec
            BASE = get_strategy("sma_crossover")
            FASTER = StrategySpec("sma_fast", "faster defaults", BASE.schema[:0], BASE.signal_fn)
        """)
    )
    registry = StrategyRegistry()
    registry.add(get_strategy("sma_crossover"), BUILT_IN)

    found = load_user_strategies([tmp_path], registry)

    assert [e.spec.name for e in found] == ["sma_fast"]


@pytest.mark.parametrize(
    ("returns", "message"),
    [
        (lambda: 1 / 0, "strategy 'misbehaving' raised ZeroDivisionError: division by zero"),
        (np.zeros(4), r"returned shape \(4,\), expected \(5,\)"),
        (np.array([0, 1, np.nan, 1, 0]), "returned nan at bar 2"),
        (np.array([0, 1, 2, 1, 0]), "returned 2 at bar 2; targets are -1, 0 or \\+1"),
        (np.array([0, 0.5, 1, 1, 0]), "returned 0.5 at bar 1"),
        (np.array(["1"] * 5), "returned dtype <U1, not numbers"),
        (None, r"returned shape \(\), expected \(5,\)"),
    ],
)
def test_a_misbehaving_strategy_is_named_with_the_reason(returns: object, message: str) -> None:
    spec = _spec(returns)

    with pytest.raises(StrategyFailedError, match=message):
        spec.signal(BARS, spec.parse())


def test_targets_of_any_integer_or_float_type_are_accepted() -> None:
    for values in ([0, 1, -1, 1, 0], [0.0, 1.0, -1.0, 1.0, 0.0], [False, True, True, False, False]):
        spec = _spec(np.array(values))
        assert spec.signal(BARS, spec.parse()).tolist() == [int(v) for v in values]


def test_a_check_across_parameters_gives_its_reason() -> None:
    spec = StrategySpec(
        "band",
        "lower below upper",
        (ParamSpec("lower", float, 1.0, 0, 10, "l"), ParamSpec("upper", float, 2.0, 0, 10, "u")),
        lambda bars, params, ind: np.zeros(len(bars)),
        lambda p: None if p.lower < p.upper else "lower must be below upper",
    )

    with pytest.raises(InvalidParameterError, match=r"^band: lower must be below upper$"):
        spec.parse({"lower": 3})
    assert spec.parse({"lower": 1.5}).as_dict() == {"lower": 1.5, "upper": 2.0}


@pytest.mark.parametrize(
    ("name", "schema", "message"),
    [
        ("my strategy", (), "name must be a Python identifier"),
        ("x", (ParamSpec("a", int, 1, 0, 2, ""), ParamSpec("a", int, 1, 0, 2, "")), "repeat"),
    ],
)
def test_a_wrongly_declared_strategy_is_refused(
    name: str, schema: tuple[ParamSpec, ...], message: str
) -> None:
    with pytest.raises(InvalidStrategyError, match=message):
        StrategySpec(name, "", schema, lambda bars, params, ind: np.zeros(len(bars)))


def _portfolio_spec(returns: object) -> StrategySpec:
    def weights(panel: Panel, params: Params) -> object:
        return returns() if callable(returns) else returns

    return StrategySpec("rotation", "weights the test says", (), None, None, weights)  # type: ignore[arg-type]


PANEL = Panel.from_bars({"AAA": BARS, "BBB": make_bars([5.0, 6.0, 5.0, 6.0, 5.0])})


@pytest.mark.parametrize(
    ("returns", "message"),
    [
        (lambda: 1 / 0, "strategy 'rotation' raised ZeroDivisionError"),
        (np.zeros((5, 3)), r"returned weights of shape \(5, 3\), expected \(5, 2\)"),
        (np.array([[0, 0]] * 4 + [[np.inf, 0]]), "returned weight inf for AAA at bar 4"),
        (np.array([["a", "b"]] * 5), "returned weights that are not numbers"),
    ],
)
def test_a_misbehaving_portfolio_strategy_is_named_with_the_reason(
    returns: object, message: str
) -> None:
    spec = _portfolio_spec(returns)

    with pytest.raises(StrategyFailedError, match=message):
        spec.weights(PANEL, spec.parse())


def test_a_one_symbol_strategy_weighs_each_symbol_equally() -> None:
    spec = _spec(np.array([1, 1, -1, 0, 1]))

    assert spec.weights(PANEL, spec.parse()).tolist() == [[0.5, 0.5], [0.5, 0.5],
        [-0.5, -0.5], [0.0, 0.0], [0.5, 0.5]]  # fmt: skip


def test_a_portfolio_strategy_does_not_run_on_one_symbol() -> None:
    spec = _portfolio_spec(np.zeros((5, 2)))

    with pytest.raises(StrategyFailedError, match="is a portfolio strategy"):
        spec.signal(BARS, spec.parse())
    with pytest.raises(InvalidStrategyError, match="needs a signal_fn or a portfolio_fn"):
        StrategySpec("nothing", "", (), None)
