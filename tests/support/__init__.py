"""Helpers shared by the tests: services they start and clients for them."""
