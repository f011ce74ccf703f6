"""Timing scripts, and the reference code the tests share with them."""
