"""Library code shared by the stages, split by concern."""
