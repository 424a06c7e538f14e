"""Benchmarks behind `mmsearch bench`: each reports ratios against a baseline measured in the same run."""
