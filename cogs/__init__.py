"""Thin Discord adapters: options in, domain calls, messages out."""
