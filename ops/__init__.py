"""Operator tooling that is not a construct: reads what the app wrote into dist/ (never the model)."""
