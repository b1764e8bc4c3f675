"""Lambda handlers of the database domain."""
