"""Spiral's domain: breath clock, glints, orchestrator, statistics. Imports no web framework."""
