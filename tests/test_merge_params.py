"""Strategy parameters: declaration checks, coercion from strings and values, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from webnn.merge import (
    ModelState,
    Param,
    ParamError,
    Strategy,
    StrategyError,
    StrategyState,
    Update,
)


class Tunable(Strategy):
    name = "tunable"
    description = "test strategy with one parameter of each kind"
    params = (
        Param("alpha", float, 0.5, "mixing weight", minimum=0, maximum=1),
        Param("window", int, 4, "buffer size", minimum=1),
        Param("clip", bool, False, "clip updates"),
        Param("mode", str, "poly", "staleness function", choices=("const", "poly", "hinge")),
        Param("cutoff", int, None, "optional cutoff"),
    )
    alpha: float

    def merge(self, model: ModelState, update: Update) -> bool:
        return True


def test_defaults_fill_in() -> None:
    s = Tunable()
    assert s.param_values == {"alpha": 0.5, "window": 4, "clip": False, "mode": "poly",
                              "cutoff": None}
    assert s.alpha == 0.5
    assert repr(s) == "Tunable(alpha=0.5, window=4, clip=False, mode='poly', cutoff=None)"


def test_strings_are_coerced_to_the_declared_types() -> None:
    s = Tunable(alpha="0.25", window="8", clip="yes", mode="hinge", cutoff="none")
    assert s.param_values == {"alpha": 0.25, "window": 8, "clip": True, "mode": "hinge",
                              "cutoff": None}
    assert Tunable(clip="0").param_values["clip"] is False
    assert Tunable(cutoff="12").param_values["cutoff"] == 12


def test_typed_values_are_accepted() -> None:
    s = Tunable(alpha=1, window=np.int64(3), clip=True, cutoff=0)
    assert s.alpha == 1.0 and isinstance(s.alpha, float)
    assert s.param_values["window"] == 3 and type(s.param_values["window"]) is int


@pytest.mark.parametrize(("given", "message"), [
    ({"alpha": "abc"}, 'strategy.tunable.alpha: expected a number, got "abc"'),
    ({"alpha": "nan"}, "strategy.tunable.alpha: expected a finite number, got nan"),
    ({"alpha": "1.5"}, "strategy.tunable.alpha: must be <= 1, got 1.5"),
    ({"alpha": True}, "strategy.tunable.alpha: expected a number, got true"),
    ({"window": "2.5"}, 'strategy.tunable.window: expected an integer, got "2.5"'),
    ({"window": 0}, "strategy.tunable.window: must be >= 1, got 0"),
    ({"clip": "maybe"}, 'strategy.tunable.clip: expected a boolean (true or false), got "maybe"'),
    ({"mode": "linear"},
     'strategy.tunable.mode: expected one of const, poly, hinge, got "linear"'),
    ({"window": None}, "strategy.tunable.window: expected an integer, got none"),
])
def test_bad_values_name_the_parameter(given: dict, message: str) -> None:
    with pytest.raises(ParamError) as info:
        Tunable(**given)
    assert message in str(info.value)
    assert info.value.param == next(iter(given))


def test_unknown_parameter_lists_the_known_ones() -> None:
    with pytest.raises(ParamError, match="strategy.tunable.beta: unknown parameter "
                                         r"\(known: alpha, clip, cutoff, mode, window\)"):
        Tunable(beta=1)


def test_every_bad_parameter_at_once_with_did_you_mean() -> None:
    with pytest.raises(ParamError) as info:
        Tunable(window=0, alpah=0.5)
    message = str(info.value)
    assert message.startswith("strategy 'tunable': 2 problems:")
    assert "strategy.tunable.window: must be >= 1, got 0" in message
    assert "strategy.tunable.alpah: unknown parameter; did you mean `alpha`?" in message


def test_parameters_are_a_settings_model() -> None:
    from webnn.merge.params import params_model

    model = params_model("tunable", Tunable.params)
    schema = model.model_json_schema()["properties"]
    assert schema["alpha"]["maximum"] == 1 and schema["alpha"]["description"] == "mixing weight"
    assert schema["mode"]["enum"] == ["const", "poly", "hinge"]


def test_bad_declarations_fail_at_class_definition() -> None:
    with pytest.raises(TypeError, match="type must be int, float, bool or str"):
        Param("x", list, [])
    with pytest.raises(TypeError, match="bad default"):
        Param("x", int, 0, minimum=1)
    with pytest.raises(TypeError, match="clash with Strategy attributes"):
        type("Bad", (Strategy,), {"name": "bad", "params": (Param("merge", int, 1),),
                                  "merge": lambda self, m, u: True})
    with pytest.raises(TypeError, match="must be a tuple of Param"):
        type("Bad", (Strategy,), {"name": "bad", "params": [Param("a", int, 1)],
                                  "merge": lambda self, m, u: True})


def test_param_description_is_json_ready() -> None:
    assert Tunable.params[0].describe() == {
        "name": "alpha", "type": "float", "default": 0.5, "help": "mixing weight",
        "choices": None, "minimum": 0, "maximum": 1}


def test_stateless_strategy_refuses_a_non_empty_state() -> None:
    with pytest.raises(StrategyError, match="keeps no state, but the checkpoint holds arrays"):
        Tunable().load_state(StrategyState(arrays={"buffer": np.zeros(2, np.float32)}))


def test_a_strategy_may_declare_its_parameters_as_a_pydantic_model() -> None:
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field, field_validator

    class EmaParams(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid")
        alpha: float = Field(0.5, ge=0, le=1, description="weight of the update")
        mode: Literal["fast", "slow"] = Field("fast", description="how")
        window: int | None = Field(None, ge=1, description="optional window")

        @field_validator("alpha")
        @classmethod
        def _not_half(cls, value: float) -> float:
            if value == 0.25:
                raise ValueError("0.25 is reserved")
            return value

    class Ema(Strategy):
        name = "ema_model"
        description = "test"
        params = EmaParams  # type: ignore[assignment]

        def merge(self, model: ModelState, update: Update) -> bool:
            return True

    assert Ema(alpha="0.75", window="3").param_values == {"alpha": 0.75, "mode": "fast",
                                                          "window": 3}
    assert [p.describe()["name"] for p in Ema.params] == ["alpha", "mode", "window"]
    assert Ema.params[1].choices == ("fast", "slow") and Ema.params[0].maximum == 1
    with pytest.raises(ParamError) as info:
        Ema(alpha="0.25", mode="medium", windw=2)
    message = str(info.value)
    assert "strategy.ema_model.alpha: 0.25 is reserved" in message
    assert 'strategy.ema_model.mode: expected one of fast, slow, got "medium"' in message
    assert "strategy.ema_model.windw: unknown parameter; did you mean `window`?" in message
