"""Dagster definitions built from the sim2real stage registry (a thin layer over the library)."""
