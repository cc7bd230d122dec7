"""The production cogs, by dotted module name (a leaf: the CLI reads it without loading discord)."""

DEFAULT_EXTENSIONS: tuple[str, ...] = ("cogs.remix", "cogs.results", "cogs.admin")
