"""Settings of the control experiments (paper sections 2c(1) and 2c(3)); defaults are the paper's.

In a run configuration this is the ``[attribute]`` section::

    [attribute]
    groups = ["precipitation", "soil", "elevation", "temperature", "vpd", "pattern",
              "ssr", "wind", "cloud"]
    national = true
    national_groups = ["precipitation", "soil", "temperature", "pattern"]
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cropsm.features.groups import ALL_GROUPS, validate_groups

PAPER_NATIONAL_GROUPS: tuple[str, ...] = ("precipitation", "soil", "temperature", "pattern")
"""Groups of the national control experiments (section 2c(3), Fig. 6): the top two climatic
factors (P, T), soil properties and the cropping pattern."""


class AttributeConfig(BaseModel):
    """Which control experiments to run.

    Attributes
    ----------
    groups
        Feature groups omitted one at a time at station level (section 2c(1), Fig. 5); default
        every group of the run's feature set (:data:`cropsm.features.groups.FEATURE_SETS`).
        Groups already switched off in the run (``[features] groups_off``) or not part of its
        feature set are skipped.
    national
        Also run the national control experiments (section 2c(3), Fig. 6): keep the reduced
        model sets of :attr:`national_groups` and, when the national product can be made, map
        their median annual differences from the reference.
    national_groups
        Feature groups of the national experiments; each must also be in :attr:`groups`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: tuple[str, ...] = Field(
        ALL_GROUPS, description="Feature groups omitted one at a time (Fig. 5)."
    )
    national: bool = Field(True, description="Run the national control experiments (Fig. 6) too.")
    national_groups: tuple[str, ...] = Field(
        PAPER_NATIONAL_GROUPS, description="Feature groups of the national experiments (Fig. 6)."
    )

    @field_validator("groups", "national_groups")
    @classmethod
    def _known_groups(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return validate_groups(names)

    @model_validator(mode="after")
    def _national_within_groups(self) -> AttributeConfig:
        if self.national:
            missing = [g for g in self.national_groups if g not in self.groups]
            if missing:
                raise ValueError(
                    f"national_groups {missing} are not in groups; the national experiments "
                    "reuse the station-level reduced models, so add them to groups"
                )
        return self
