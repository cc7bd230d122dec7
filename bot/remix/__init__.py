"""The remix domain: request model, backends, result download."""
