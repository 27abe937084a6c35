"""Clients for the third-party services the product talks to."""
