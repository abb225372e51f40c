"""Operator tooling that is not a construct: checks, plans and pictures over what the app wrote into dist/."""
