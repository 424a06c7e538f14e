"""Queries: text, image, item, user and history inputs fused into one ranking inside Qdrant.

`engine` holds `Searcher`, `signals` the scores a query can fuse and their weights, `fusion` the
numpy reference of every fusion, `results` what a search returns, `filters` the filter
language of the CLI, and `report` the HTML page of a result list.
"""
