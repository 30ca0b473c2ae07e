"""Training settings (paper section 2a); defaults are the paper's.

Feature groups switched off (the control experiments, section 2c) are not part of this model:
they are an argument of the training functions, so one ``TrainConfig`` serves every experiment.
"""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def _positive_unique(values: list, name: str) -> list:
    if not values:
        raise ValueError(f"{name} must list at least one value")
    if any(v <= 0 for v in values):
        raise ValueError(f"{name} must be positive, got {values}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has repeated values: {values}")
    return values


class GridConfig(BaseModel):
    """Hyperparameter grid of section 2a: 4 x 5 x 3 x 4 = 240 configurations per soil layer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_sizes: list[int] = Field(
        default_factory=lambda: [128, 512, 1024, 2048], description="Minibatch sizes."
    )
    learning_rates: list[float] = Field(
        default_factory=lambda: [5e-4, 1e-3, 5e-3, 1e-2, 1.5e-2],
        description="Adam step sizes.",
    )
    hidden_layers: list[int] = Field(
        default_factory=lambda: [1, 2, 3], description="Numbers of hidden layers."
    )
    units: list[int] = Field(
        default_factory=lambda: [16, 32, 64, 96], description="Units per hidden layer."
    )

    @field_validator("batch_sizes", "learning_rates", "hidden_layers", "units")
    @classmethod
    def _check(cls, values: list, info) -> list:
        return _positive_unique(values, info.field_name)

    @property
    def n_configurations(self) -> int:
        return (
            len(self.batch_sizes)
            * len(self.learning_rates)
            * len(self.hidden_layers)
            * len(self.units)
        )

    def configurations(self) -> list[tuple[int, int, int, float]]:
        """Every ``(hidden_layers, units, batch_size, learning_rate)``, in a fixed order."""
        return list(
            itertools.product(self.hidden_layers, self.units, self.batch_sizes, self.learning_rates)
        )


class TrainConfig(BaseModel):
    """How the five layer networks are trained and tuned.

    Attributes
    ----------
    split
        ``random`` (the paper: observations sampled at random), ``station`` (whole stations
        held out) or ``year`` (whole years held out).
    test_fraction
        Share of the rows held out for testing (paper: 0.3).
    validation_fraction
        Share of the remaining training rows used for validation / early stopping and for
        choosing the configuration (paper: 0.1).
    seed
        Fixes the split, the initial weights and the shuffling; same seed -> same numbers.
    max_epochs, patience
        Early stopping on validation MSE: stop a configuration after ``patience`` epochs
        without improvement, at most ``max_epochs`` (not given in the paper).
    grid
        The hyperparameter grid (paper's by default).
    ensemble_grouping
        ``shape``: configurations sharing (hidden layers, units) train as one vectorised
        ensemble, batch sizes in lockstep by gradient accumulation (measured fastest);
        ``shape_batch``: one ensemble per (hidden layers, units, batch size).
    parallel_ensembles
        How many ensembles train at the same time in threads (the grid search's ensembles, and
        the pairs of the deep ensemble's extra members); measured faster than one at a time on
        2 cores. Does not change the numbers.
    prune_at_epochs, prune_keep_fraction
        Successive halving over the grid: after each listed epoch only the best
        ``prune_keep_fraction`` of the configurations still in play (by best validation MSE
        so far, across all ensembles) go on training. Empty (default): the exhaustive grid
        search, every configuration trained until early stopping or ``max_epochs``.
    selection_tolerance
        0 (default, the paper): select the lowest validation MSE. Otherwise the smallest
        network within ``1 + selection_tolerance`` of it (cheaper national product).
    output
        ``bounded`` (default): the output is ``phi sigmoid(z)``, between 0 and the porosity
        ``phi`` of the row's layer (:mod:`cropsm.train.bounds`), so every prediction is
        physically possible by construction; ``anchored``: the same range, but the network
        learns the departure from the pattern's bucket, ``phi sigmoid(z + logit(b))``
        (:func:`cropsm.train.bounds.anchor_logit`), so a change of cropping pattern moves the
        prediction by the bucket's physical size; ``linear``: the paper's linear output.
    members
        Deep-ensemble size K per layer (:mod:`cropsm.train.ensemble`). Member 0 is the grid
        search's selected network (so ``members = 1`` is the single network of the paper);
        members 1...K-1 retrain the selected hyperparameters with their own initial weights,
        row order and a bootstrap resample (``bootstrap``), as one vectorised
        ensemble, chained member by member.
    observation_error
        The readings' own error, which the intervals of the product leave out: they are
        meant for the soil moisture, not for a station's reading of it
        (:func:`cropsm.train.ensemble.observation_error_sd`). ``estimate`` (default): the white
        error of the readings, one instrument for every layer: the smallest of the layers'
        nuggets of the residuals' temporal variogram (each is an upper bound: it also holds
        model error faster than the readings are spaced; see
        ``cropsm.train.chain._share_observation_error``); ``estimate_by_layer``: each layer's
        own nugget (narrower intervals near the surface); a number: an instrument error known
        from elsewhere, m3 m-3, every layer; ``none``: 0, the intervals are for a reading.
    bootstrap
        What members 1...K-1 resample (:func:`cropsm.train.ensemble.member_weights`):
        ``stations`` (default: whole training stations with replacement), ``rows`` (training
        rows with replacement) or ``none`` (only the initial weights and row order differ).
    input_noise
        SD of Gaussian noise added to the standardised training inputs, fresh every epoch
        (:func:`cropsm.train.mlp.noisy_inputs`), in units of each input's training SD; 0
        (default, the paper): none. Validation, test and prediction see the inputs as they are.
    weight_decay
        Decoupled weight decay ``lambda`` of Adam (AdamW,
        :func:`cropsm.train.mlp.decayed_step`) on the weights, not the biases; 0 (default, the
        paper): plain Adam.
    chain
        ``upper`` (default, the paper, section 2a): the network of layer k >= 2 also takes
        ``sm_pred_upper``, the chained prediction of layer k - 1; ``none``: every layer's network
        takes only its own features (the layers are independent). A saved network's feature
        names say which it is, so prediction and evaluation follow the trained models.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: Literal["random", "station", "year"] = Field(
        "random", description="Hold out random rows (paper), whole stations or whole years."
    )
    test_fraction: float = Field(0.3, gt=0.0, lt=1.0, description="Share of rows for testing.")
    validation_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="Share of the non-test rows for validation."
    )
    seed: int = Field(0, ge=0, description="Seed of the split, initial weights and shuffling.")
    max_epochs: int = Field(100, ge=1, description="Most epochs per configuration.")
    patience: int = Field(
        10, ge=1, description="Epochs without validation improvement before stopping."
    )
    grid: GridConfig = Field(default_factory=GridConfig, description="Hyperparameter grid.")
    ensemble_grouping: Literal["shape", "shape_batch"] = Field(
        "shape", description="Which configurations are trained together as one ensemble."
    )
    parallel_ensembles: int = Field(
        2, ge=1, description="Ensembles trained at the same time (threads); same results."
    )

    prune_at_epochs: list[int] = Field(
        default_factory=list,
        description="Epochs after which the worst configurations stop (empty: exhaustive).",
    )
    prune_keep_fraction: float = Field(
        1.0 / 3.0, gt=0.0, le=1.0, description="Share of configurations kept at each rung."
    )

    selection_tolerance: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Pick the smallest network within this relative margin of the best MSE.",
    )

    output: Literal["bounded", "anchored", "linear"] = Field(
        "bounded",
        description=(
            "'bounded': 0 <= SM <= porosity by construction; 'anchored': the same range, "
            "started from the pattern's bucket; 'linear': the paper's."
        ),
    )

    members: int = Field(
        5, ge=1, le=64, description="Deep-ensemble members per layer (1: the single network)."
    )

    observation_error: Literal["estimate", "estimate_by_layer", "none"] | float = Field(
        "estimate",
        description=(
            "Readings' error left out of the intervals: 'estimate' (the layers' smallest "
            "nugget), 'estimate_by_layer', 'none' or m3 m-3."
        ),
    )

    bootstrap: Literal["stations", "rows", "none"] = Field(
        "stations", description="What ensemble members 1...K-1 resample: stations, rows or none."
    )
    input_noise: float = Field(
        0.0, ge=0.0, le=2.0, description="SD of the noise on standardised training inputs."
    )
    weight_decay: float = Field(
        0.0, ge=0.0, le=1.0, description="Decoupled (AdamW) weight decay of the weights."
    )
    chain: Literal["upper", "none"] = Field(
        "upper",
        description="'upper': layer k >= 2 takes layer k-1's prediction (paper); 'none': not.",
    )

    @field_validator("observation_error")
    @classmethod
    def _error_is_a_standard_deviation(cls, value):
        if isinstance(value, float) and not 0.0 <= value <= 0.2:
            raise ValueError(
                "observation_error must be 'estimate', 'estimate_by_layer', 'none' or an SD "
                "of 0-0.2 m3 m-3, "
                f"got {value}"
            )
        return value

    @field_validator("prune_at_epochs")
    @classmethod
    def _rungs_increase(cls, values: list[int]) -> list[int]:
        if any(v < 1 for v in values) or values != sorted(set(values)):
            raise ValueError(f"prune_at_epochs must be increasing positive epochs, got {values}")
        return values

    @model_validator(mode="after")
    def _fractions_leave_training_rows(self) -> TrainConfig:
        if (1.0 - self.test_fraction) * (1.0 - self.validation_fraction) <= 0.0:
            raise ValueError("test_fraction and validation_fraction leave no training rows")
        return self
