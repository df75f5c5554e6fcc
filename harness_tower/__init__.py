"""harness_tower."""
