"""Benchmarks behind `mmsearch bench`: each reports ratios against a baseline measured in the same run.

Each module has one shape: a settings model (`IndexBenchConfig`, `QueryBenchConfig`,
`StoreBenchConfig`), `run(settings, log=...)` returning a result with `to_json()`, and
`format_result(result)` for the table; progress goes to `log` (by default the module's logger).
`vectors` holds the synthetic vectors both catalogues are drawn from. The encoder benchmark, which
needs torch, is `indexers.export.bench`.
"""
