"""Evaluation of retrieval and recommendation strategies: metrics and splits."""
