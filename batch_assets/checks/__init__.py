"""Asset checks on each model's predictions (complete, valid, drift), read back from
storage."""
