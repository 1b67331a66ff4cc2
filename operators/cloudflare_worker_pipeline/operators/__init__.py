"""One operator per pipeline stage."""
