"""The configuration pipeline: parse (stage 1) -> analyze (stage 2) -> merge (stage 3)."""
