"""What runs without a person: the new-data and retry sensors, the reaper of dead
runs' jobs, the jobs they request, and which failures are worth a retry."""
