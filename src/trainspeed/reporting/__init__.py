"""Turning results into something a person reads."""
