"""The fault matrix (`make chaos`): cells of injected faults, jobs of known content, and a checker that can fail."""
