"""An alert's way in: validation, canonical forms, claim text, dedup and alert views."""
