"""Lambda handlers of the auth domain."""
