"""Timing scripts, each a short declaration of its runs and targets on ``benchmarks.harness``."""
