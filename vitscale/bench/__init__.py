"""Benchmarks run side by side with the plain alternative (`vitscale bench ...`)."""
