"""Request, response and message bodies: pydantic models carrying their limits on the fields."""
