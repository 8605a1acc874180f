"""Simulated game studios: real network servers, faults included, so each adapter meets a live peer."""
