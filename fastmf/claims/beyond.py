"""Claims: being written."""
