"""Helpers the tests share with the benchmarks: process control and the reference pipeline."""
