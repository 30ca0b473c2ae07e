"""The years and days of a station record to read: options shared by the station-data sources."""

from __future__ import annotations

from pydantic import BaseModel, field_validator, model_validator


class RecordSelection(BaseModel):
    """Checks of ``first_year``, ``last_year`` and ``days_of_month`` in a station-data input
    section.

    A source's input section (e.g. ``[inputs.uscrn]``, ``[inputs.ismn]``) derives from this
    and declares those fields among its own (so its keys keep their order in messages); the
    validators reject days outside 1-31 and a first year after the last.
    """

    @field_validator("days_of_month", check_fields=False)
    @classmethod
    def _days(cls, days: list[int]) -> list[int]:
        bad = [d for d in days if not 1 <= d <= 31]
        if bad:
            raise ValueError(f"days of the month must be 1...31, got {bad}")
        return sorted(set(days))

    @model_validator(mode="after")
    def _years(self):
        if self.first_year is not None and self.last_year is not None:
            if self.first_year > self.last_year:
                raise ValueError(
                    f"first_year {self.first_year} is after last_year {self.last_year}"
                )
        return self


__all__ = ["RecordSelection"]
