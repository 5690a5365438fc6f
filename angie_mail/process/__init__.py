"""Process model: master, workers, signals, pid file (nginx conventions)."""
