"""The virtual China: a synthetic, known-truth world for testing cropsm end to end."""
