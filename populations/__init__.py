"""populations."""
