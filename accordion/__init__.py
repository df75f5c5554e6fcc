"""accordion."""
