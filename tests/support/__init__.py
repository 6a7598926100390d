"""Helpers shared by the test layers and the benchmarks: processes, waiting, brokers, clusters."""
