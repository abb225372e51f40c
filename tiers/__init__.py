"""Typed configuration of an Iotistica environment: models, tier presets and the loader.

``tiers.models`` holds the pydantic models, ``tiers/presets/<tier>.yaml`` the four tier overlays
(demo, starter, standard, enterprise) and ``tiers.loader`` the layering of an environment file on top
of its tier, with errors that name the file and the key path.
"""

TIERS = ("demo", "starter", "standard", "enterprise")
