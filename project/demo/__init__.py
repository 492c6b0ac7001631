"""Demo tasks of the example project."""
