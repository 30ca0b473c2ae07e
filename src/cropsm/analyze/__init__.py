"""Analyses of a run: observations, the national product, the satellite comparison, scenarios."""
