"""Staleness functions at hand-computed points, their parameters, and the staleness cutoff."""

from __future__ import annotations

import pytest

from webnn.merge.staleness import (
    TOO_STALE,
    check_staleness,
    constant,
    hinge,
    make_staleness_fn,
    polynomial,
)


def test_constant_is_one_at_any_staleness() -> None:
    assert [constant(s) for s in (0, 1, 5, 1000)] == [1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("staleness", "a", "expected"),
    [
        (0, 0.5, 1.0),  # (0 + 1)^-0.5
        (3, 0.5, 0.5),  # 4^-0.5
        (8, 0.5, 1 / 3),  # 9^-0.5
        (4, 1.0, 0.2),  # 5^-1
        (1, 2.0, 0.25),  # 2^-2
        (7, 0.0, 1.0),  # a = 0: no decay
    ],
)
def test_polynomial_values(staleness: int, a: float, expected: float) -> None:
    assert polynomial(staleness, a) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("staleness", "a", "b", "expected"),
    [
        (0, 10, 4, 1.0),
        (4, 10, 4, 1.0),  # at b: still 1
        (5, 10, 4, 1 / 11),  # 1 / (10 * 1 + 1)
        (6, 10, 4, 1 / 21),  # 1 / (10 * 2 + 1)
        (3, 1, 2, 0.5),  # 1 / (1 * 1 + 1)
        (12, 0.5, 2, 1 / 6),  # 1 / (0.5 * 10 + 1)
    ],
)
def test_hinge_values(staleness: int, a: float, b: float, expected: float) -> None:
    assert hinge(staleness, a, b) == pytest.approx(expected, rel=1e-12)


def test_make_staleness_fn_fills_each_functions_defaults() -> None:
    poly = make_staleness_fn("polynomial")
    assert (poly.a, poly(3)) == (0.5, 0.5)
    hinged = make_staleness_fn("hinge")
    assert (hinged.a, hinged.b) == (10.0, 4.0)
    assert hinged(5) == pytest.approx(1 / 11)
    assert make_staleness_fn("hinge", a=1, b=2)(3) == pytest.approx(0.5)
    assert make_staleness_fn("constant")(99) == 1.0
    # FedBuff's 1 / sqrt(1 + staleness) is the default polynomial
    assert poly(15) == pytest.approx(1 / 4)
    assert "polynomial" in poly.describe() and "0.5" in poly.describe()


def test_make_staleness_fn_names_the_bad_parameter() -> None:
    with pytest.raises(ValueError, match=r"staleness_fn: unknown staleness function 'expo'"):
        make_staleness_fn("expo")
    with pytest.raises(ValueError, match=r"^a: must be a finite number >= 0, got -1"):
        make_staleness_fn("polynomial", a=-1)
    with pytest.raises(ValueError, match=r"^b: must be a finite number >= 0, got nan"):
        make_staleness_fn("hinge", b=float("nan"))


def test_negative_or_non_numeric_staleness_is_an_error() -> None:
    with pytest.raises(ValueError, match="staleness must be >= 0, got -1"):
        polynomial(-1)
    with pytest.raises(TypeError, match="staleness must be a number"):
        hinge("3")  # type: ignore[arg-type]


def test_check_staleness_refuses_only_above_the_bound() -> None:
    assert check_staleness(1000, None) is None
    assert check_staleness(0, 0) is None
    assert check_staleness(3, 3) is None
    reason = check_staleness(4, 3)
    assert reason is not None
    assert "4 versions behind" in reason and "at most 3" in reason and "max_staleness" in reason
    assert TOO_STALE == "too_stale"


def test_check_staleness_rejects_a_bad_bound() -> None:
    with pytest.raises(ValueError, match="max_staleness must be an integer >= 0"):
        check_staleness(1, -1)
    with pytest.raises(ValueError, match="max_staleness must be an integer >= 0"):
        check_staleness(1, 2.5)  # type: ignore[arg-type]
