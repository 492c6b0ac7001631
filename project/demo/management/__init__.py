"""Management commands of the example project."""
