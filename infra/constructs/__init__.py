"""One construct per domain; ``stack.py`` composes them."""
