"""Lambda handlers of the admin domain."""
