"""Operator tooling that is not a construct: checks and plans over manifests."""
