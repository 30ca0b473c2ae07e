"""Skill of the product against the virtual China's known truth."""
